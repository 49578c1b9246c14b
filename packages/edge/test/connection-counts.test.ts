// Connection counts shared by the edge's threads: a cap holds over every thread's slice, one busy
// address does not crowd out others, and a dead thread's slice no longer counts.
import { describe, expect, it } from 'vitest';
import { ConnectionCounts } from '../src/index.ts';

describe('connection counts', () => {
  it('admit up to the total over every thread, and again after a release', () => {
    const buffer = ConnectionCounts.buffer(3);
    const caps = { maxConnections: 5, maxPerAddress: 5 };
    const threads = [0, 1, 2].map((slice) => new ConnectionCounts(buffer, slice, caps));
    const admitted = Array.from({ length: 9 }, (_, i) =>
      (threads[i % 3] as ConnectionCounts).admit(`10.0.0.${i}`),
    );
    expect(admitted.filter((refusal) => refusal === null)).toHaveLength(5);
    expect(admitted.slice(5)).toEqual(['total', 'total', 'total', 'total']);
    expect(threads[2]?.total).toBe(5);
    threads[0]?.release('10.0.0.0');
    expect(threads[1]?.admit('10.0.0.99')).toBeNull();
  });

  it('count each address on its own: one at its cap leaves thousands of others alone', () => {
    const buffer = ConnectionCounts.buffer(2);
    const caps = { maxConnections: 100_000, maxPerAddress: 50 };
    const [one, two] = [0, 1].map((slice) => new ConnectionCounts(buffer, slice, caps)) as [
      ConnectionCounts,
      ConnectionCounts,
    ];
    for (let i = 0; i < 50; i++) expect((i % 2 ? one : two).admit('203.0.113.7')).toBeNull();
    expect(one.admit('203.0.113.7')).toBe('address');
    expect(two.admit('203.0.113.7')).toBe('address');
    const others = Array.from({ length: 5000 }, (_, i) => one.admit(`2001:db8::${i.toString(16)}`));
    expect(others.every((refusal) => refusal === null)).toBe(true);
    expect(one.total).toBe(5050);
  });

  it("forget a dead thread's connections", () => {
    const buffer = ConnectionCounts.buffer(2);
    const caps = { maxConnections: 2, maxPerAddress: 2 };
    const alive = new ConnectionCounts(buffer, 0, caps);
    const dead = new ConnectionCounts(buffer, 1, caps);
    expect(dead.admit('127.0.0.1')).toBeNull();
    expect(dead.admit('127.0.0.1')).toBeNull();
    expect(alive.admit('127.0.0.1')).toBe('total');
    ConnectionCounts.clear(buffer, 1);
    expect(alive.admit('127.0.0.1')).toBeNull();
    expect(alive.total).toBe(1);
  });
});
