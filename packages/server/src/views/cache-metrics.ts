// The metrics card of a cache's console page: totals, latency and an SVG chart of hits vs misses.
import type { CacheMetrics } from '@edgegate/contract';
import { html, type SafeHtml } from './html.ts';

const WIDTH = 600;
const HEIGHT = 120;

function ms(value: number | null): string {
  return value === null ? '—' : `≤ ${value} ms`;
}

function bytes(value: number): string {
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  return `${(value / 1024 / 1024).toFixed(1)} MiB`;
}

// Stacked bars per interval: hits at the bottom, misses above them; heights share one scale.
// Geometry is in SVG attributes and colours in the stylesheet: the console's CSP allows no inline
// styles.
function chart(series: CacheMetrics['series']): SafeHtml {
  const peak = Math.max(1, ...series.map((p) => p.hits + p.misses));
  const slot = WIDTH / series.length;
  const bars = series.map((point, i) => {
    const hitHeight = (point.hits / peak) * HEIGHT;
    const missHeight = (point.misses / peak) * HEIGHT;
    const x = (i * slot + 1).toFixed(1);
    const w = Math.max(1, slot - 2).toFixed(1);
    return html`<g>
      <title>${point.at}: ${point.hits} hits, ${point.misses} misses</title>
      <rect
        class="hits"
        x="${x}"
        y="${(HEIGHT - hitHeight).toFixed(1)}"
        width="${w}"
        height="${hitHeight.toFixed(1)}"
      ></rect>
      <rect
        class="misses"
        x="${x}"
        y="${(HEIGHT - hitHeight - missHeight).toFixed(1)}"
        width="${w}"
        height="${missHeight.toFixed(1)}"
      ></rect>
    </g>`;
  });
  return html`<svg
    viewBox="0 0 ${WIDTH} ${HEIGHT}"
    role="img"
    aria-label="Hits and misses over the last hour"
    data-testid="metrics-chart"
    class="chart"
  >
    ${bars}
  </svg>`;
}

export function metricsSection(metrics: CacheMetrics): SafeHtml {
  const ratio = metrics.hitRatio === null ? '—' : `${(metrics.hitRatio * 100).toFixed(1)} %`;
  return html`<section class="card" aria-labelledby="metrics-heading">
    <h2 id="metrics-heading">Traffic in the last hour</h2>
    <p class="muted">
      Reported by the edge every 10 seconds.
      <span class="legend-hits">■ hits</span> <span class="legend-misses">■ misses</span>
    </p>
    ${chart(metrics.series)}
    <table data-testid="metrics-totals">
      <tbody>
        <tr>
          <th scope="row">Queries</th>
          <td>${metrics.queries}</td>
        </tr>
        <tr>
          <th scope="row">Hits / misses</th>
          <td>${metrics.hits} / ${metrics.misses}</td>
        </tr>
        <tr>
          <th scope="row">Hit ratio</th>
          <td data-testid="hit-ratio">${ratio}</td>
        </tr>
        <tr>
          <th scope="row">Not cacheable</th>
          <td>${metrics.uncacheable}</td>
        </tr>
        <tr>
          <th scope="row">Served from cache</th>
          <td>${bytes(metrics.bytesServed)}</td>
        </tr>
        <tr>
          <th scope="row">Latency of hits (p50 / p99)</th>
          <td>${ms(metrics.latency.hit.p50Ms)} / ${ms(metrics.latency.hit.p99Ms)}</td>
        </tr>
        <tr>
          <th scope="row">Latency of misses (p50 / p99)</th>
          <td>${ms(metrics.latency.miss.p50Ms)} / ${ms(metrics.latency.miss.p99Ms)}</td>
        </tr>
      </tbody>
    </table>
    ${
      metrics.topTemplates.length === 0
        ? html`<p class="muted">No queries yet.</p>`
        : html`<h3>Top query templates</h3>
            <table>
              <thead>
                <tr>
                  <th scope="col">Template</th>
                  <th scope="col">Queries</th>
                </tr>
              </thead>
              <tbody>
                ${metrics.topTemplates.map(
                  (t) =>
                    html`<tr>
                      <td><code>${t.normalized}</code></td>
                      <td>${t.count}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
    }
  </section>`;
}
