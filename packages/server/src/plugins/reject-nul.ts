// Text with NUL characters can never be stored (Postgres text refuses them), so any request
// carrying one is refused up front with a clear 400 instead of failing deep in the store.
import type { FastifyInstance } from 'fastify';
import { Problem } from '../problem.ts';

function findNul(value: unknown, path: string, depth = 0): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path || '(value)' : undefined;
  if (depth > 32 || value === null || typeof value !== 'object') return undefined;
  for (const [key, item] of Object.entries(value)) {
    if (key.includes('\u0000')) return path ? `${path}.${key}` : key;
    const found = findNul(item, path ? `${path}.${key}` : key, depth + 1);
    if (found) return found;
  }
  return undefined;
}

export function registerRejectNul(app: FastifyInstance) {
  app.addHook('preValidation', async (request) => {
    for (const [part, value] of [
      ['params', request.params],
      ['query', request.query],
      ['body', request.body],
    ] as const) {
      const path = findNul(value, '');
      if (path !== undefined) {
        throw new Problem(
          'request.nul_character',
          400,
          `${part} ${path}: must not contain NUL (\\u0000) characters.`,
          {
            errors: [{ path, message: 'must not contain NUL (\\u0000) characters' }],
          },
        );
      }
    }
  });
}
