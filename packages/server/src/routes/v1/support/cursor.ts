// Opaque pagination cursors: the last id of a page, so the next page starts after it.
import { Problem } from '../../../problem.ts';

export function encodeCursor(lastId: string): string {
  return Buffer.from(lastId, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^[a-z]+_[A-Za-z0-9]+$/.test(id)) {
    throw new Problem(
      'pagination.invalid_cursor',
      400,
      'cursor is not a value this API returned as nextCursor.',
      {
        errors: [{ path: 'cursor', message: 'is not a value returned as nextCursor' }],
      },
    );
  }
  return id;
}

/** Given limit+1 rows, the page to return and the cursor to the next one. */
export function toPage<T extends { id: string }>(
  rows: T[],
  limit: number,
): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.id) : null };
}
