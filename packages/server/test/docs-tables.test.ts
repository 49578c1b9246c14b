// The Markdown tables of docs/ render as tables: every row has as many cells as its header. A `|`
// inside a code span still splits a cell in GitHub's Markdown, so it must be escaped (`\|`).
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../../..');
const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).map((name) => `docs/${name}`)].filter(
  (path) => path.endsWith('.md'),
);

/** The cells of a table row: split on every `|` that is not escaped. */
function cellCount(row: string): number {
  return row
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/).length;
}

/** Rows whose cell count differs from their table's header, as `path:line`. */
function brokenRows(path: string): string[] {
  const lines = readFileSync(join(ROOT, path), 'utf8').split('\n');
  const broken: string[] = [];
  let inFence = false;
  let columns: number | undefined;
  lines.forEach((line, index) => {
    if (/^\s*```/.test(line)) inFence = !inFence;
    if (inFence || !line.trim().startsWith('|')) {
      columns = undefined;
      return;
    }
    if (columns === undefined) columns = cellCount(line);
    else if (cellCount(line) !== columns) broken.push(`${path}:${index + 1}`);
  });
  return broken;
}

describe('tables in the docs', () => {
  it.each(DOCS)('%s: every row has as many cells as its header', (path) => {
    expect(brokenRows(path)).toEqual([]);
  });
});
