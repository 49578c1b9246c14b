// Checks a submitted connect form against its type's schema, one human message per field.
import type { z } from 'zod';
import type { ConnectionTypeDef } from './types.ts';

export interface FieldError {
  /** Dotted field name; `(config)` when the whole value is wrong. */
  path: string;
  message: string;
}

export type ValidationResult<C> = { ok: true; config: C } | { ok: false; errors: FieldError[] };

export function validateConnectionConfig<C>(
  def: ConnectionTypeDef<C>,
  input: unknown,
): ValidationResult<C> {
  const result = def.schema.safeParse(input);
  if (result.success) return { ok: true, config: result.data };
  return { ok: false, errors: result.error.issues.flatMap(toFieldErrors) };
}

function toFieldErrors(issue: z.core.$ZodIssue): FieldError[] {
  const path = issue.path.join('.');
  // A strict object reports every unknown key in one issue; the form shows one error per field.
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      path: path === '' ? key : `${path}.${key}`,
      message: 'is not a field of this connection type',
    }));
  }
  if (path === '') return [{ path: '(config)', message: 'must be an object of form fields' }];
  return [{ path, message: issue.message }];
}
