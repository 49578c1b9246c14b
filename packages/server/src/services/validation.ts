// Turns zod failures into one 422 problem listing every field error.
import type { z } from 'zod';
import { Problem } from '../problem.ts';

export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const errors = result.error.issues.map((issue) => ({
    path: issue.path.join('.') || '(body)',
    message: issue.message,
  }));
  const detail = errors
    .map((e) => (e.path === '(body)' ? e.message : `${e.path}: ${e.message}`))
    .join('; ');
  throw new Problem('validation_failed', 422, detail, { errors });
}

/** The SQLSTATE of an error from either store driver (pg and PGlite both set `code`). */
function sqlStateOf(error: unknown): unknown {
  return typeof error === 'object' && error !== null
    ? (error as { code?: unknown }).code
    : undefined;
}

/** Whether an error from either store driver is a unique-constraint violation. */
export function isUniqueViolation(error: unknown): boolean {
  return sqlStateOf(error) === '23505';
}

/** Whether an error from either store driver is a foreign-key violation (the row referred to is gone). */
export function isForeignKeyViolation(error: unknown): boolean {
  return sqlStateOf(error) === '23503';
}
