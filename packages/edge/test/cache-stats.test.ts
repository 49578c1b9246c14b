// Per-cache counters: what a drain reports (each query once), and how the main thread adds up what
// its edge threads drained.
import { describe, expect, it } from 'vitest';
import { CacheStats } from '../src/index.ts';

function hit(stats: CacheStats, fingerprint: string, ms = 0.04): void {
  stats.template(fingerprint, () => `SELECT ${fingerprint}`);
  stats.hits += 1;
  stats.hitLatency.record(ms);
}

describe('CacheStats', () => {
  it('a drain reports what happened since the previous one, each query once', () => {
    const stats = new CacheStats('cch_a');
    hit(stats, 'f1');
    hit(stats, 'f1');
    stats.misses += 1;
    stats.missLatency.record(2);
    expect(stats.drain()).toMatchObject({
      cacheId: 'cch_a',
      queries: 3,
      hits: 2,
      misses: 1,
      templates: [{ fingerprint: 'f1', normalized: 'SELECT f1', count: 2 }],
    });
    hit(stats, 'f2');
    const second = stats.drain();
    expect(second).toMatchObject({ queries: 1, hits: 1, misses: 0 });
    expect(second?.templates).toEqual([{ fingerprint: 'f2', normalized: 'SELECT f2', count: 1 }]);
    expect(second?.hitLatency.reduce((a, b) => a + b, 0)).toBe(1);
    expect(stats.drain()).toBeNull();
  });

  it('a drain carries the sum of the latencies since the previous one, and absorb adds it up', () => {
    const thread = new CacheStats('cch_a');
    hit(thread, 'f1', 0.5);
    hit(thread, 'f1', 1.5);
    thread.misses += 1;
    thread.missLatency.record(20);
    const first = thread.drain();
    expect(first).toMatchObject({ hitLatencySumMs: 2, missLatencySumMs: 20 });
    hit(thread, 'f1', 3);
    const second = thread.drain();
    expect(second).toMatchObject({ hitLatencySumMs: 3, missLatencySumMs: 0 });
    const host = new CacheStats('cch_a');
    host.absorb(first!);
    host.absorb(second!);
    expect(host.hitLatency.sumMs).toBe(5);
    expect(host.missLatency.sumMs).toBe(20);
  });

  // A template is counted when the query arrives, the query when its answer is complete.
  it('a drain while a query is in flight keeps its template count for the next drain', () => {
    const stats = new CacheStats('cch_a');
    stats.template('slow', () => 'SELECT pg_sleep($1)');
    expect(stats.drain()).toBeNull();
    stats.misses += 1;
    expect(stats.drain()?.templates).toEqual([
      { fingerprint: 'slow', normalized: 'SELECT pg_sleep($1)', count: 1 },
    ]);
  });

  it("absorb adds what other threads drained, and the total's drain reports the sum", () => {
    const threads = [new CacheStats('cch_a'), new CacheStats('cch_a')];
    hit(threads[0] as CacheStats, 'f1', 0.04);
    hit(threads[1] as CacheStats, 'f1', 0.4);
    hit(threads[1] as CacheStats, 'f2', 0.4);
    (threads[1] as CacheStats).uncacheable += 1;
    (threads[1] as CacheStats).bytesServed += 100;
    const total = new CacheStats('cch_a');
    for (const thread of threads) total.absorb(thread.drain()!);
    expect(total).toMatchObject({ hits: 3, misses: 0, uncacheable: 1, bytesServed: 100 });
    expect(total.hitLatency.counts.reduce((a, b) => a + b, 0)).toBe(3);
    const delta = total.drain();
    expect(delta).toMatchObject({ queries: 4, hits: 3, uncacheable: 1, bytesServed: 100 });
    expect(delta?.templates).toEqual([
      { fingerprint: 'f1', normalized: 'SELECT f1', count: 2 },
      { fingerprint: 'f2', normalized: 'SELECT f2', count: 1 },
    ]);
  });
});
