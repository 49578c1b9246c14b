// Text that cannot be stored as sent is refused up front instead of failing deep in the store or
// being silently changed: NUL characters (Postgres text refuses them) anywhere, with 400, and lone
// UTF-16 surrogates in a JSON body (`"\ud800"`, which UTF-8 cannot encode, so it would be stored
// as U+FFFD), with 422 like any other invalid field.
import type { FastifyInstance } from 'fastify';
import { Problem } from '../problem.ts';

/** The path of the first string (or key) in `value` that `bad` matches. */
function findText(
  value: unknown,
  bad: (text: string) => boolean,
  path: string,
  depth = 0,
): string | undefined {
  if (typeof value === 'string') return bad(value) ? path || '(value)' : undefined;
  if (depth > 32 || value === null || typeof value !== 'object') return undefined;
  for (const [key, item] of Object.entries(value)) {
    if (bad(key)) return path ? `${path}.${key.toWellFormed()}` : key.toWellFormed();
    const found = findText(item, bad, path ? `${path}.${key}` : key, depth + 1);
    if (found) return found;
  }
  return undefined;
}

const hasNul = (text: string) => text.includes('\u0000');
const hasLoneSurrogate = (text: string) => !text.isWellFormed();

export function registerRejectUnstorableText(app: FastifyInstance) {
  app.addHook('preValidation', async (request) => {
    for (const [part, value] of [
      ['params', request.params],
      ['query', request.query],
      ['body', request.body],
    ] as const) {
      const path = findText(value, hasNul, '');
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
    const path = findText(request.body, hasLoneSurrogate, '');
    if (path !== undefined) {
      const message = 'must not contain lone UTF-16 surrogates (\\ud800–\\udfff without a pair)';
      throw new Problem('validation_failed', 422, `${path}: ${message}`, {
        errors: [{ path, message }],
      });
    }
  });
}
