// The hosted connect flow (SPEC §7): catalog, connect sessions, the code exchange, connections,
// the workspace event log and webhook endpoints.
import { z } from 'zod';
import { cacheModeSchema, cacheNameSchema, cacheSchema, originTlsSchema } from './caches.ts';

export const connectionTypeIdSchema = z.enum(['postgresql', 'mysql', 'mariadb', 'redis', 'mssql']);
export type ConnectionTypeId = z.infer<typeof connectionTypeIdSchema>;

export const connectionTypeSchema = z.object({
  id: connectionTypeIdSchema,
  title: z.string(),
  description: z.string(),
  cacheType: z
    .enum(['postgres', 'mysql', 'mariadb', 'mssql'])
    .nullable()
    .describe('The cache type that can front it, or null'),
  schema: z
    .record(z.string(), z.unknown())
    .describe(
      'JSON Schema of the form; each property has title, description, examples and an `x-edgegate` object of UI hints (order, placeholder, secret, widget)',
    ),
  secretFields: z.array(z.string()),
});
export type ConnectionType = z.infer<typeof connectionTypeSchema>;

/** https, or http on a loopback host (a partner developing locally); no credentials, no fragment. */
export function redirectUrlProblem(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute URL';
  }
  if (url.username || url.password) return 'must not contain a user name or password';
  // Only plain host names and IP addresses: the origin goes into a Content-Security-Policy.
  if (
    !/^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)$/.test(
      url.hostname,
    )
  )
    return 'must have a plain host name (letters, digits, hyphens and dots)';
  if (url.hash) return 'must not contain a #fragment';
  if (url.protocol === 'https:') return null;
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.protocol === 'http:' && loopback) return null;
  return 'must use https (http only on localhost, 127.0.0.1 or [::1])';
}

const redirectUrl = z
  .string({ error: 'must be a string' })
  .max(2000, 'must be at most 2000 characters')
  .superRefine((value, ctx) => {
    const problem = redirectUrlProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** The partner's own user the session is for, echoed on the connection, its events and webhooks. */
export const connectEndUserSchema = z
  .strictObject({
    id: z
      .string({ error: 'must be a string' })
      .min(1, 'is required')
      .max(200, 'must be at most 200 characters')
      .describe("The partner's id for its user"),
    email: z
      .email({ error: 'must be an email address' })
      .max(320, 'must be at most 320 characters')
      .optional(),
    display_name: z
      .string({ error: 'must be a string' })
      .max(200, 'must be at most 200 characters')
      .optional(),
  })
  .describe('The partner user this is for');
export type ConnectEndUser = z.infer<typeof connectEndUserSchema>;

export const CONNECT_METADATA_MAX_BYTES = 4096;
export const CONNECT_METADATA_MAX_KEYS = 50;

/** The partner's own JSON object, echoed like the end user: at most 50 keys and 4 KiB as JSON. */
export const connectMetadataSchema = z
  .record(z.string().max(100, 'keys must be at most 100 characters'), z.unknown())
  .superRefine((value, ctx) => {
    if (Object.keys(value).length > CONNECT_METADATA_MAX_KEYS)
      ctx.addIssue({
        code: 'custom',
        message: `must have at most ${CONNECT_METADATA_MAX_KEYS} keys`,
      });
    if (new TextEncoder().encode(JSON.stringify(value)).length > CONNECT_METADATA_MAX_BYTES)
      ctx.addIssue({
        code: 'custom',
        message: `must be at most ${CONNECT_METADATA_MAX_BYTES} bytes as JSON`,
      });
  })
  .describe("The partner's own JSON object (at most 50 keys, 4 KiB as JSON)");

export const CONNECT_SESSION_DEFAULT_TTL = 600;
export const CONNECT_SESSION_MAX_TTL = 7 * 24 * 3600;

export const connectSessionCreateSchema = z
  .strictObject({
    type: connectionTypeIdSchema.optional(),
    whitelist: z
      .array(connectionTypeIdSchema)
      .min(1, 'list at least one type')
      .max(5)
      .refine((v) => new Set(v).size === v.length, 'lists a type twice')
      .optional(),
    name: cacheNameSchema.describe('Name of the connection the user creates'),
    redirect_url: redirectUrl.describe(
      'Where the page sends the user with `code` and `state` (https, or http on loopback)',
    ),
    connection: z
      .string()
      .max(64, 'is not a connection id')
      .optional()
      .describe('Reconnect: the page updates the credentials of this connection'),
    ttlSeconds: z
      .number({ error: 'must be a number of seconds' })
      .int('must be a whole number of seconds')
      .min(60, 'must be at least 60 seconds')
      .max(CONNECT_SESSION_MAX_TTL, 'must be at most 7 days (604800 seconds)')
      .default(CONNECT_SESSION_DEFAULT_TTL),
    theme: z.enum(['auto', 'light', 'dark']).default('auto'),
    state: z
      .string()
      .max(500, 'must be at most 500 characters')
      .optional()
      .describe('Echoed to redirect_url; the page URL may also carry `?state=`'),
    end_user: connectEndUserSchema.optional(),
    metadata: connectMetadataSchema.optional(),
  })
  .refine((v) => (v.type === undefined) !== (v.whitelist === undefined), {
    message: 'give exactly one of `type` or `whitelist`',
    path: ['type'],
  });
export type ConnectSessionCreate = z.input<typeof connectSessionCreateSchema>;

export const connectSessionCreatedSchema = z.object({
  redirect_url: z.string().describe('Open this page (popup, iframe or full page)'),
  token: z.string().describe('Single-use; stored only as its digest'),
  expires_at: z.string(),
});

export const connectSessionSchema = z.object({
  id: z.string(),
  status: z.enum(['pending', 'completed', 'cancelled', 'expired']),
  types: z.array(connectionTypeIdSchema),
  name: z.string(),
  redirect_url: z.string(),
  connection: z.string().nullable().describe('The connection being reconnected, if any'),
  result_connection: z
    .string()
    .nullable()
    .describe('The connection made or updated, once completed'),
  created_at: z.string(),
  expires_at: z.string(),
  finished_at: z.string().nullable(),
  end_user: connectEndUserSchema.nullable(),
  metadata: z.record(z.string(), z.unknown()).nullable(),
});
export type ConnectSession = z.infer<typeof connectSessionSchema>;

export const connectExchangeSchema = z.strictObject({
  code: z.string({ error: 'must be a string' }).min(1, 'is required').max(200, 'is not a code'),
});

export const connectExchangeResultSchema = z.object({
  connectionId: z.string(),
  type: connectionTypeIdSchema,
  name: z.string(),
});

export const connectionSchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  type: connectionTypeIdSchema,
  name: z.string(),
  config: z
    .record(z.string(), z.unknown())
    .describe('The fields that are not secret (host, port, user, …)'),
  secretFields: z
    .array(z.string())
    .describe('Names of the secret fields that are set; their values are never returned'),
  passwordVerified: z
    .boolean()
    .nullable()
    .describe(
      'Whether the database checked the password when the connection was tested: false when it let the user in without asking (trust authentication), when the test could not log in, or when no password was given; null for connections saved before this was recorded',
    ),
  endUser: connectEndUserSchema
    .nullable()
    .describe('The end_user of the connect session that made or last updated it'),
  metadata: z
    .record(z.string(), z.unknown())
    .nullable()
    .describe('The metadata of the connect session that made or last updated it'),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Connection = z.infer<typeof connectionSchema>;

export const connectionCacheCreateSchema = z.strictObject({
  name: cacheNameSchema.optional().describe("Defaults to the connection's name"),
  defaultMode: cacheModeSchema.default('auto'),
  defaultTtlSeconds: z.number().int().min(1).max(2592000).default(60),
  originTls: originTlsSchema.optional().describe("Defaults from the connection's TLS setting"),
});

export const connectionCacheResultSchema = z.object({
  cache: cacheSchema,
  connectionString: z
    .string()
    .describe('The edge connection string, with the stored credentials; shown now, never again'),
});

export const EVENT_TYPES = [
  'connection.created',
  'connection.updated',
  'connection.deleted',
  'cache.created',
  'cache.replication_slot_large',
] as const;
export const eventTypeSchema = z.enum(EVENT_TYPES);

export const workspaceEventSchema = z.object({
  id: z.string(),
  type: eventTypeSchema,
  workspaceId: z.string(),
  createdAt: z.string(),
  data: z.record(z.string(), z.unknown()),
});
export type WorkspaceEvent = z.infer<typeof workspaceEventSchema>;

/** The event "Send a test event" delivers to one endpoint; it is not in the event log. */
export const WEBHOOK_TEST_EVENT = 'webhook.test';
/** Every type a webhook delivery can carry. */
export const DELIVERY_EVENT_TYPES = [...EVENT_TYPES, WEBHOOK_TEST_EVENT] as const;

const connectionEventData = z.object({
  connectionId: z.string(),
  type: connectionTypeIdSchema,
  name: z.string(),
  endUser: connectEndUserSchema.nullable(),
  metadata: z.record(z.string(), z.unknown()).nullable(),
});
const connectionSavedData = connectionEventData.extend({
  passwordVerified: z
    .boolean()
    .nullable()
    .describe('Whether the database checked the password when the connection was tested'),
});

/** Each delivery's `data`, by event type: what the OpenAPI document's `webhooks` section shows. */
export const EVENT_DATA_SCHEMAS = {
  'connection.created': connectionSavedData,
  'connection.updated': connectionSavedData,
  'connection.deleted': connectionEventData,
  'cache.created': z.object({
    cacheId: z.string(),
    name: z.string(),
    type: z.string(),
    hostname: z.string(),
    port: z.number().int(),
  }),
  'cache.replication_slot_large': z.object({
    cacheId: z.string(),
    name: z.string(),
    retainedBytes: z
      .number()
      .int()
      .describe("WAL the cache's replication slot keeps on its origin, as last measured"),
    boundBytes: z.number().int().describe('REPLICATION_SLOT_WARN_MB, in bytes'),
  }),
  [WEBHOOK_TEST_EVENT]: z.object({
    webhookId: z.string().describe('The endpoint the test was sent to'),
    message: z.string(),
  }),
} as const;

/** The JSON body of a delivery of `type`: the event envelope with that type's data. */
export function webhookPayloadSchema(type: (typeof DELIVERY_EVENT_TYPES)[number]) {
  return z.object({
    id: z.string().describe('The event id; also the webhook-id header'),
    type: z.literal(type),
    workspaceId: z.string(),
    createdAt: z.string(),
    data: EVENT_DATA_SCHEMAS[type],
  });
}

export const webhookCreateSchema = z.strictObject({
  url: z
    .string({ error: 'must be a string' })
    .max(2000, 'must be at most 2000 characters')
    .superRefine((value, ctx) => {
      const problem = redirectUrlProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  description: z.string().trim().max(200, 'must be at most 200 characters').default(''),
  events: z
    .array(eventTypeSchema)
    .min(1)
    .optional()
    .describe('Only these event types; every type when absent'),
});

export const webhookSchema = z.object({
  id: z.string(),
  url: z.string(),
  description: z.string(),
  events: z.array(eventTypeSchema).nullable(),
  createdAt: z.string(),
});

export const webhookCreatedSchema = webhookSchema.extend({
  secret: z.string().describe('Signing secret (whsec_<base64>), shown once'),
});

export const webhookSecretRotateSchema = z.strictObject({
  overlapSeconds: z
    .number({ error: 'must be a number of seconds' })
    .int('must be a whole number of seconds')
    .min(0, 'must be 0 or more')
    .max(7 * 24 * 3600, 'must be at most 7 days (604800 seconds)')
    .default(24 * 3600)
    .describe('How long the previous secret keeps signing beside the new one (0: stop at once)'),
});

export const webhookSecretRotatedSchema = webhookCreatedSchema.extend({
  previousSecretExpiresAt: z
    .string()
    .nullable()
    .describe('Until then every delivery carries a signature under each secret'),
});

export const webhookDeliverySchema = z.object({
  id: z.string(),
  eventId: z.string(),
  eventType: z.enum(DELIVERY_EVENT_TYPES),
  status: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.number().int(),
  lastStatus: z
    .number()
    .int()
    .nullable()
    .describe("The endpoint's last HTTP status, if it answered"),
  lastError: z.string().nullable().describe('Why the last attempt failed'),
  nextAttemptAt: z.string().nullable().describe('When a pending delivery is tried next'),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
});
