// Field schemas the connection types share: human error messages plus the UI hints in `.meta()`.
import { z } from 'zod';
import type { FieldHints } from './types.ts';

type HintOverrides = Partial<FieldHints> & Pick<FieldHints, 'order'>;

/** Host names, IPv4 and bare IPv6 addresses; the SSRF guard judges the address itself. */
const HOST_PATTERN = /^[A-Za-z0-9._:-]+$/;

/** A field's `.meta()`: JSON Schema's own keywords (title, description, examples) and the UI hints. */
export function hints({ example, ...rest }: FieldHints) {
  return { ...rest, ...(example === undefined ? {} : { examples: [example] }) };
}

export function text() {
  return z.string({
    error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string'),
  });
}

export function hostField(overrides: HintOverrides) {
  return text()
    .trim()
    .min(1, 'is required')
    .max(253, 'must be at most 253 characters')
    .regex(HOST_PATTERN, 'must be a host name or an IP address')
    .meta(
      hints({
        title: 'Host',
        description: 'Name or IP address of the server, as Edgegate will reach it.',
        placeholder: 'db.example.com',
        example: 'db.example.com',
        ...overrides,
      }),
    );
}

export function portField(defaultPort: number, overrides: HintOverrides) {
  return z
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be between 1 and 65535')
    .max(65535, 'must be between 1 and 65535')
    .default(defaultPort)
    .meta(hints({ title: 'Port', example: defaultPort, widget: 'number', ...overrides }));
}

export function userField(overrides: HintOverrides) {
  return text()
    .min(1, 'is required')
    .max(128, 'must be at most 128 characters')
    .meta(
      hints({ title: 'User', placeholder: 'app_readonly', example: 'app_readonly', ...overrides }),
    );
}

export function passwordField(overrides: HintOverrides) {
  return text()
    .max(1024, 'must be at most 1024 characters')
    .default('')
    .meta(hints({ title: 'Password', secret: true, widget: 'password', ...overrides }));
}

export function databaseField(overrides: HintOverrides) {
  return text()
    .min(1, 'is required')
    .max(128, 'must be at most 128 characters')
    .meta(hints({ title: 'Database', placeholder: 'app', example: 'app', ...overrides }));
}

export function choiceField<const V extends readonly [string, ...string[]]>(
  values: V,
  defaultValue: V[number],
  overrides: HintOverrides & Pick<FieldHints, 'title'>,
) {
  return z
    .enum(values, { error: `must be one of ${values.join(', ')}` })
    .default(defaultValue)
    .meta(hints({ widget: 'select', ...overrides }));
}

export function switchField(overrides: HintOverrides & Pick<FieldHints, 'title'>) {
  return z
    .boolean({ error: 'must be true or false' })
    .default(false)
    .meta(hints({ widget: 'checkbox', ...overrides }));
}
