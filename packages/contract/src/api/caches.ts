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

const replicationCredentialSchema = z
  .strictObject({
    mode: z.literal('replication'),
    connectionId: z
      .string({ error: 'must be a string' })
      .max(100)
      .optional()
      .describe('A connection made through the connect flow whose user may replicate'),
    username: z
      .string({ error: 'must be a string' })
      .min(1, 'is required')
      .max(128)
      .optional()
      .describe('A user with the replication privilege (instead of connectionId)'),
    password: z
      .string({ error: 'must be a string' })
      .max(1024)
      .optional()
      .describe('Its password: stored encrypted, never returned'),
    database: z
      .string({ error: 'must be a string' })
      .min(1)
      .max(128)
      .optional()
      .describe(
        "Postgres: the database to follow (a slot follows one database); default the connection's, else `postgres`",
      ),
    publication: z
      .string({ error: 'must be a string' })
      .regex(/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/, 'must be a plain Postgres identifier')
      .optional()
      .describe(
        'Postgres: an existing publication to follow; when absent, `edgegate_<cache id>` FOR ALL TABLES is created (needs a superuser)',
      ),
    maxLagSeconds: z
      .number({ error: 'must be a number of seconds' })
      .int('must be a whole number of seconds')
      .min(1, 'must be at least 1 second')
      .max(3600, 'must be at most 3600 seconds')
      .optional()
      .describe(
        'Behind the origin by more than this (default 5), the cache serves nothing from memory until it catches up',
      ),
  })
  .superRefine((value, ctx) => {
    const byConnection = value.connectionId !== undefined;
    const byUser = value.username !== undefined || value.password !== undefined;
    if (byConnection === byUser) {
      ctx.addIssue({
        code: 'custom',
        message: 'give either connectionId, or username and password',
      });
    } else if (byUser && (value.username === undefined || value.password === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [value.username === undefined ? 'username' : 'password'],
        message: 'is required with username and password',
      });
    }
  });

/** How a cache learns of writes (SPEC §8a): only through the edge, or from the origin's stream. */
export const invalidationInputSchema = z
  .discriminatedUnion('mode', [
    z.strictObject({ mode: z.literal('edge') }),
    replicationCredentialSchema,
  ])
  .describe(
    "`edge`: writes through the edge invalidate, others are bounded by the TTL. `replication`: the origin's change stream (Postgres logical replication, the MariaDB/MySQL binary log) invalidates every committed write",
  );
export type InvalidationInput = z.input<typeof invalidationInputSchema>;

/** Whether edge nodes share this cache's results through Redis (the second level, SPEC §8). */
export const sharedResultsSchema = z
  .boolean()
  .describe(
    "Edge nodes share this cache's results through Redis (a second level behind each node's own memory), so a new or restarted node serves hits at once. Takes effect on edges with REDIS_URL, for caches in `edge` invalidation mode",
  );

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
    invalidation: invalidationInputSchema.default({ mode: 'edge' }),
    sharedResults: sharedResultsSchema.default(false),
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
    invalidation: invalidationInputSchema.optional(),
    sharedResults: sharedResultsSchema.optional(),
  })
  .refine((v) => Object.keys(v).length > 0, 'send at least one field to change');
export type CacheUpdate = z.input<typeof cacheUpdateSchema>;

export const invalidationStatusSchema = z.enum(['following', 'catching_up', 'down']);

export const invalidationSchema = z.object({
  mode: z.enum(['edge', 'replication']),
  connectionId: z.string().nullable().describe('The connection whose credential is used, if any'),
  username: z.string().nullable().describe('The replication user given to the API, if any'),
  database: z.string().nullable(),
  publication: z.string().nullable(),
  maxLagSeconds: z.number().nullable().describe('replication: the lag bound; null in edge mode'),
  status: invalidationStatusSchema
    .nullable()
    .describe(
      'replication: `following` (caught up), `catching_up` (starting or behind), `down` (see reason); null in edge mode',
    ),
  reason: z.string().nullable().describe('Why it is down or catching up'),
  lagSeconds: z
    .number()
    .nullable()
    .describe("Seconds between a write's commit on the origin and its invalidation, as last seen"),
  lagBytes: z
    .number()
    .nullable()
    .describe("Bytes of the origin's log not yet applied by the follower, as last seen (Postgres)"),
  slotBytes: z
    .number()
    .nullable()
    .describe(
      "WAL the cache's replication slot keeps on its Postgres origin, as last measured (every 30 s)",
    ),
});

export type CacheInvalidation = z.infer<typeof invalidationSchema>;

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
  invalidation: invalidationSchema,
  sharedResults: sharedResultsSchema,
  createdAt: z.string(),
  updatedAt: z.string(),
  createdBy: z
    .object({
      type: z.literal('app'),
      appId: z.string(),
      name: z.string().describe("The app's name when it created the cache"),
    })
    .nullable()
    .describe(
      'The partner app whose OAuth token (or an API key it minted) created the cache; null when a ' +
        'person or a service token did. Read-only; the cache stays when the app is revoked.',
    ),
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
