// Per-cache counters and latency histograms kept by the edge; the control plane persists them per
// minute (for the API and the console chart) and Prometheus reads them at scrape time.

/** Upper bounds of the latency buckets, in milliseconds; the last bucket is open-ended. */
export const LATENCY_BOUNDS_MS = [
  0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 200,
  500, 1000, 2000, 5000,
];

export class LatencyHistogram {
  readonly counts = new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
  /** Every sample added up (a Prometheus histogram's `_sum`). */
  sumMs = 0;

  record(ms: number): void {
    let i = 0;
    while (i < LATENCY_BOUNDS_MS.length && ms > (LATENCY_BOUNDS_MS[i] as number)) i += 1;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sumMs += ms;
  }

  add(counts: readonly number[], sumMs = 0): void {
    for (let i = 0; i < this.counts.length; i++) {
      this.counts[i] = (this.counts[i] as number) + (counts[i] ?? 0);
    }
    this.sumMs += sumMs;
  }
}

/** The bucket bound under which `q` (0..1) of the samples fall; null without samples. */
export function quantileMs(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] as number;
    if (seen >= rank) return LATENCY_BOUNDS_MS[i] ?? (LATENCY_BOUNDS_MS.at(-1) as number) * 2;
  }
  return null;
}

export interface TemplateCount {
  fingerprint: string;
  /** The template with constants replaced by $n: never a literal a user sent. */
  normalized: string;
  count: number;
}

const MAX_TEMPLATES = 500;

/** What one cache id did since the last `drain`. */
export interface StatsDelta {
  cacheId: string;
  queries: number;
  hits: number;
  misses: number;
  uncacheable: number;
  bytesServed: number;
  hitLatency: number[];
  missLatency: number[];
  /** The samples of `hitLatency` and `missLatency` added up (absent: 0). */
  hitLatencySumMs?: number;
  missLatencySumMs?: number;
  templates: TemplateCount[];
}

export class CacheStats {
  readonly cacheId: string;
  // Totals since the process started (Prometheus counters).
  hits = 0;
  misses = 0;
  uncacheable = 0;
  bytesServed = 0;
  readonly hitLatency = new LatencyHistogram();
  readonly missLatency = new LatencyHistogram();
  // What was drained already, so a delta is totals minus this.
  #drained = {
    hits: 0,
    misses: 0,
    uncacheable: 0,
    bytesServed: 0,
    hit: [] as number[],
    miss: [] as number[],
    hitSumMs: 0,
    missSumMs: 0,
  };
  #templates = new Map<string, TemplateCount>();

  constructor(cacheId: string) {
    this.cacheId = cacheId;
  }

  get queries(): number {
    return this.hits + this.misses + this.uncacheable;
  }

  /** Counts a query of a template; `normalize` is called once per new template. */
  template(fingerprint: string, normalize: () => string): void {
    if (fingerprint === '') return;
    const known = this.#templates.get(fingerprint);
    if (known !== undefined) {
      known.count += 1;
      return;
    }
    if (this.#templates.size >= MAX_TEMPLATES) return;
    this.#templates.set(fingerprint, { fingerprint, normalized: normalize(), count: 1 });
  }

  /** Adds what another thread counted (its `drain`) to these totals. */
  absorb(delta: StatsDelta): void {
    this.hits += delta.hits;
    this.misses += delta.misses;
    this.uncacheable += delta.uncacheable;
    this.bytesServed += delta.bytesServed;
    this.hitLatency.add(delta.hitLatency, delta.hitLatencySumMs);
    this.missLatency.add(delta.missLatency, delta.missLatencySumMs);
    for (const template of delta.templates) {
      const known = this.#templates.get(template.fingerprint);
      if (known !== undefined) known.count += template.count;
      else if (this.#templates.size < MAX_TEMPLATES) {
        this.#templates.set(template.fingerprint, { ...template });
      }
    }
  }

  /** Everything since the previous drain; resets the per-template counts. */
  drain(): StatsDelta | null {
    const d = this.#drained;
    // Nothing finished since the last drain: keep everything (a template counted for a query still
    // in flight is reported with it).
    if (this.queries === d.hits + d.misses + d.uncacheable) return null;
    const hit = this.hitLatency.counts.map((c, i) => c - (d.hit[i] ?? 0));
    const miss = this.missLatency.counts.map((c, i) => c - (d.miss[i] ?? 0));
    const delta: StatsDelta = {
      cacheId: this.cacheId,
      queries: this.queries - d.hits - d.misses - d.uncacheable,
      hits: this.hits - d.hits,
      misses: this.misses - d.misses,
      uncacheable: this.uncacheable - d.uncacheable,
      bytesServed: this.bytesServed - d.bytesServed,
      hitLatency: hit,
      missLatency: miss,
      hitLatencySumMs: this.hitLatency.sumMs - d.hitSumMs,
      missLatencySumMs: this.missLatency.sumMs - d.missSumMs,
      templates: [...this.#templates.values()].filter((t) => t.count > 0).map((t) => ({ ...t })),
    };
    this.#drained = {
      hits: this.hits,
      misses: this.misses,
      uncacheable: this.uncacheable,
      bytesServed: this.bytesServed,
      hit: [...this.hitLatency.counts],
      miss: [...this.missLatency.counts],
      hitSumMs: this.hitLatency.sumMs,
      missSumMs: this.missLatency.sumMs,
    };
    for (const t of this.#templates.values()) t.count = 0;
    return delta;
  }
}

/** The stats of every cache one edge (or one of its threads) has served, made on first use. */
export class StatsByCache {
  readonly #stats = new Map<string, CacheStats>();

  get(cacheId: string): CacheStats {
    let stats = this.#stats.get(cacheId);
    if (stats === undefined) {
      stats = new CacheStats(cacheId);
      this.#stats.set(cacheId, stats);
    }
    return stats;
  }

  all(): Iterable<CacheStats> {
    return this.#stats.values();
  }
}
