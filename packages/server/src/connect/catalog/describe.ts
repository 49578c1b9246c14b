// The public catalog entry of a connection type: its form as JSON Schema, UI hints under `x-edgegate`.
import { z } from 'zod';
import type { ConnectionTypeDef, FieldHints } from './types.ts';

/** The hints a form renderer needs beside JSON Schema's own title, description, examples, pattern. */
export interface EdgegateFieldHints {
  order: number;
  placeholder?: string;
  secret: boolean;
  widget: NonNullable<FieldHints['widget']>;
}

export type JsonSchema = Record<string, unknown> & {
  properties?: Record<string, Record<string, unknown> & { 'x-edgegate'?: EdgegateFieldHints }>;
};

export interface ConnectionTypeEntry {
  id: ConnectionTypeDef['id'];
  title: string;
  description: string;
  cacheType: ConnectionTypeDef['cacheType'];
  schema: JsonSchema;
  secretFields: string[];
}

export function describeConnectionType<C>(def: ConnectionTypeDef<C>): ConnectionTypeEntry {
  // The input side: a field with a default is one the user may leave out.
  const schema = z.toJSONSchema(def.schema, { io: 'input' }) as JsonSchema;
  const properties = Object.fromEntries(
    Object.entries(schema.properties ?? {}).map(([name, property]) => [
      name,
      withEdgegateHints(property),
    ]),
  );
  return {
    id: def.id,
    title: def.title,
    description: def.description,
    cacheType: def.cacheType,
    schema: { ...schema, properties },
    secretFields: [...def.secretFields],
  };
}

// zod copies `.meta()` keys next to JSON Schema's; the ones JSON Schema lacks move under `x-edgegate`.
function withEdgegateHints(property: Record<string, unknown>): Record<string, unknown> {
  const { order, placeholder, secret, widget, ...standard } = property;
  const hints: EdgegateFieldHints = {
    order: typeof order === 'number' ? order : Number.MAX_SAFE_INTEGER,
    secret: secret === true,
    widget: isWidget(widget) ? widget : inferWidget(standard, secret === true),
    ...(typeof placeholder === 'string' ? { placeholder } : {}),
  };
  return { ...standard, 'x-edgegate': hints };
}

function inferWidget(
  property: Record<string, unknown>,
  secret: boolean,
): EdgegateFieldHints['widget'] {
  if (secret) return 'password';
  if (Array.isArray(property.enum)) return 'select';
  if (property.type === 'boolean') return 'checkbox';
  if (property.type === 'integer' || property.type === 'number') return 'number';
  return 'text';
}

function isWidget(value: unknown): value is EdgegateFieldHints['widget'] {
  return (
    value === 'text' ||
    value === 'password' ||
    value === 'number' ||
    value === 'checkbox' ||
    value === 'select'
  );
}
