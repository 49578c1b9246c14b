// Caches and their rules (SPEC §2): what the API accepts and returns.
import { z } from 'zod';

export const cacheTypeSchema = z.enum(['postgres', 'mysql', 'mariadb', 'mssql']);
export type CacheType = z.infer<typeof cacheTypeSchema>;

export const cacheModeSchema = z.enum(['auto', 'manual', 'off']);
export type CacheMode = z.infer<typeof cacheModeSchema>;

export const originTlsSchema = z.enum(['disable', 'prefer', 'require']);

/** Cache ids ride in connection strings: opaque, URL-safe, never a hyphen (MySQL user prefix). */
export const cacheIdSchema = z.string().regex(/^cch_[A-Za-z0-9]{22}$/, 'not a cache id');

const ttlSeconds = z
  .number({ error: 'must be a number of seconds' })
  .int('must be a whole number of seconds')
  .min(1, 'must be at least 1 second')
  .max(30 * 24 * 3600, 'must be at most 30 days (2592000 seconds)');

export const cacheNameSchema = z
  .string({ error: 'must be a string' })
  .trim()
  .min(1, 'is required')
  .max(80, 'must be at most 80 characters');

export const hostnameInputSchema = z
  .string({ error: 'must be a string' })
  .trim()
  .min(1, 'is required')
  .max(253, 'must be at most 253 characters');

export const portSchema = z
  .number({ error: 'must be a number' })
  .int('must be a whole number')
  .min(1, 'must be between 1 and 65535')
  .max(65535, 'must be between 1 and 65535');

export const cacheCreateSchema = z.strictObject(
  {
    name: cacheNameSchema,
    type: cacheTypeSchema,
    hostname: hostnameInputSchema,
    port: portSchema,
    description: z.string().trim().max(500, 'must be at most 500 characters').default(''),
    defaultMode: cacheModeSchema.default('auto'),
    defaultTtlSeconds: ttlSeconds.default(60),
    originTls: originTlsSchema.default('prefer'),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown field(s): ${issue.keys.join(', ')} (origin credentials are never stored: clients send their own)`
        : undefined,
  },
);
export type CacheCreate = z.input<typeof cacheCreateSchema>;

export const cacheUpdateSchema = z
  .strictObject({
    name: cacheNameSchema.optional(),
    hostname: hostnameInputSchema.optional(),
    port: portSchema.optional(),
    description: z.string().trim().max(500, 'must be at most 500 characters').optional(),
    defaultMode: cacheModeSchema.optional(),
    defaultTtlSeconds: ttlSeconds.optional(),
    originTls: originTlsSchema.optional(),
  })
  .refine((v) => Object.keys(v).length > 0, 'send at least one field to change');
export type CacheUpdate = z.input<typeof cacheUpdateSchema>;

export const cacheSchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  name: z.string(),
  description: z.string(),
  type: cacheTypeSchema,
  hostname: z.string(),
  port: z.number(),
  defaultMode: cacheModeSchema,
  defaultTtlSeconds: z.number(),
  originTls: originTlsSchema,
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Cache = z.infer<typeof cacheSchema>;

export const ruleKindSchema = z.enum(['table', 'template', 'query']);
export const transactionPolicySchema = z.enum(['never', 'untilWrite']);

const ruleTtlSeconds = ttlSeconds
  .nullable()
  .optional()
  .describe('Required when mode is manual; auto and off keep it but do not use it');

const TTL_REQUIRED = 'is required when mode is manual';

export const ruleCreateSchema = z
  .strictObject({
    kind: ruleKindSchema,
    key: z
      .string({ error: 'must be a string' })
      .min(1, 'is required')
      .max(10_000, 'must be at most 10000 characters')
      .refine((key) => key.trim() !== '', 'is required')
      .describe(
        'table: a table name, `name` or `schema.name` (unquoted parts are lower-cased); ' +
          'template: SQL text (Postgres caches) or a 16-hex-digit fingerprint; ' +
          'query: the exact SQL text, byte for byte as the application sends it',
      ),
    mode: cacheModeSchema,
    ttlSeconds: ruleTtlSeconds,
    transactionPolicy: transactionPolicySchema.default('never'),
  })
  .refine((rule) => rule.mode !== 'manual' || (rule.ttlSeconds ?? null) !== null, {
    message: TTL_REQUIRED,
    path: ['ttlSeconds'],
  });
export type RuleCreate = z.input<typeof ruleCreateSchema>;

/** Kind and key name what a rule matches and never change; delete and create to match something else. */
export const ruleUpdateSchema = z
  .strictObject({
    mode: cacheModeSchema.optional(),
    ttlSeconds: ruleTtlSeconds,
    transactionPolicy: transactionPolicySchema.optional(),
  })
  .refine((v) => Object.keys(v).length > 0, 'send at least one field to change')
  .refine((v) => v.mode !== 'manual' || v.ttlSeconds !== null, {
    message: TTL_REQUIRED,
    path: ['ttlSeconds'],
  });
export type RuleUpdate = z.input<typeof ruleUpdateSchema>;

export const ruleSchema = z.object({
  id: z.string(),
  cacheId: z.string(),
  kind: ruleKindSchema,
  key: z.string(),
  sql: z
    .string()
    .nullable()
    .describe(
      'template: the normalised SQL the fingerprint was taken from (null when given a fingerprint); query: the exact text; table: null',
    ),
  mode: cacheModeSchema,
  ttlSeconds: z.number().nullable(),
  transactionPolicy: transactionPolicySchema,
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Rule = z.infer<typeof ruleSchema>;

export const connectionStringRequestSchema = z.strictObject({
  cacheId: z.string({ error: 'must be a string' }).min(1, 'is required').max(100),
  connectionString: z
    .string({ error: 'must be a string' })
    .max(4096, 'must be at most 4096 characters')
    .describe("The origin database's connection string; it is converted, never stored or logged"),
});
export type ConnectionStringRequest = z.input<typeof connectionStringRequestSchema>;

export const connectionStringSchema = z.object({
  connectionString: z.string().describe('The same connection string, pointed at the edge'),
  warnings: z
    .array(z.string())
    .describe('What would stop the converted string from working as it is (empty when nothing)'),
});
