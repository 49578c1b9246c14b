// `partner-cli caches list`: every cache of the workspace the user connected, page by page.
import type { Cache } from '@edgegate/sdk';
import type { Io } from '../io.ts';
import { openSession } from '../session.ts';
import type { Settings } from '../settings.ts';

export async function listCaches(settings: Settings, io: Io, options: { json: boolean }) {
  const client = await openSession(settings);
  const caches: Cache[] = [];
  for await (const page of client.caches.pages({ limit: 100 })) caches.push(...page.data);

  if (options.json) {
    io.out(JSON.stringify(caches, null, 2));
    return;
  }
  if (caches.length === 0) {
    io.out('No caches yet: create one with partner-cli caches create.');
    return;
  }
  const rows = [
    ['ID', 'NAME', 'TYPE', 'ORIGIN'],
    ...caches.map((cache) => [cache.id, cache.name, cache.type, originOf(cache)]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) {
    io.out(
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    );
  }
}

export function originOf(cache: Cache): string {
  // An IPv6 literal needs brackets before the port.
  return cache.hostname.includes(':')
    ? `[${cache.hostname}]:${cache.port}`
    : `${cache.hostname}:${cache.port}`;
}
