// List endpoints: `limit` + opaque `cursor` in, `data` + `nextCursor` out.
import { z } from 'zod';

export const paginationQuerySchema = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1, 'limit must be at least 1')
    .max(100, 'limit must be at most 100')
    .default(20),
  cursor: z
    .string()
    .max(200)
    .regex(/^[A-Za-z0-9_-]+$/, 'cursor must be a value returned as nextCursor')
    .optional(),
});
export type PaginationQuery = z.infer<typeof paginationQuerySchema>;

export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({
    data: z.array(item),
    nextCursor: z
      .string()
      .nullable()
      .describe('Pass as `cursor` to get the next page; null on the last page'),
  });
}

export function dataOf<T extends z.ZodType>(item: T) {
  return z.object({ data: item });
}
