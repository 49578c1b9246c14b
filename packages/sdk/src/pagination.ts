// List endpoints answer `{data, nextCursor}`; these walk them page by page, fetching the next page
// only when the caller asks for it.

export interface Page<T> {
  data: T[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface ListOptions {
  /** 1–100; the server's default is 20. */
  limit?: number;
  cursor?: string;
}

/**
 * Every page from `options.cursor` on. `nextCursorOf` says where the next page starts (null: this
 * was the last); by default the page's own `nextCursor`.
 */
export async function* paginate<P extends { nextCursor: string | null }>(
  fetchPage: (options: ListOptions) => Promise<P>,
  options: ListOptions = {},
  nextCursorOf: (page: P) => string | null = (page) => page.nextCursor,
): AsyncGenerator<P, void, undefined> {
  let cursor = options.cursor;
  for (;;) {
    const page = await fetchPage({ ...options, cursor });
    yield page;
    const next = nextCursorOf(page);
    if (next === null) return;
    cursor = next;
  }
}
