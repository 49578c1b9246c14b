// Machine credentials: API keys (per user and workspace) and service tokens (per workspace).
import { z } from 'zod';
import { apiScopeSchema } from '../scopes.ts';

const expiresAt = z.iso
  .datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2027-01-31T00:00:00Z' })
  .refine((v) => Date.parse(v) > Date.now(), 'must be in the future')
  .optional();

const credentialName = z
  .string({ error: 'must be a string' })
  .trim()
  .min(1, 'is required')
  .max(80, 'must be at most 80 characters');

/** A cache id as a client sends it: bounded, so a huge value is never echoed back in errors. */
const cacheIdInputSchema = z.string().max(64, 'is not a cache id');

export const apiKeyCreateSchema = z.strictObject({
  name: credentialName,
  scopes: z
    .array(apiScopeSchema)
    .min(1, 'choose at least one scope')
    .optional()
    .describe('Defaults to the scopes of the credential creating it'),
  cacheIds: z
    .array(cacheIdInputSchema)
    .min(1)
    .max(100)
    .optional()
    .describe('Narrow the key to these caches'),
  expiresAt,
});
export type ApiKeyCreate = z.input<typeof apiKeyCreateSchema>;

export const apiKeySchema = z.object({
  id: z.string(),
  name: z.string(),
  prefix: z.string().describe('The first characters of the key, to recognise it'),
  userId: z.string(),
  workspaceId: z.string(),
  scopes: z.array(z.string()),
  cacheIds: z.array(z.string()).nullable(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  createdAt: z.string(),
});

export const apiKeyCreatedSchema = apiKeySchema.extend({
  key: z.string().describe('The secret, shown this once: store it now'),
});

export const serviceTokenAccessSchema = z.strictObject({
  scope: apiScopeSchema,
  cacheId: cacheIdInputSchema
    .optional()
    .describe('Limit this access to one cache; all caches of the workspace when absent'),
});

export const serviceTokenCreateSchema = z.strictObject({
  name: credentialName,
  accesses: z.array(serviceTokenAccessSchema).min(1, 'grant at least one access').max(200),
  expiresAt,
});
export type ServiceTokenCreate = z.input<typeof serviceTokenCreateSchema>;

export const serviceTokenSchema = z.object({
  id: z.string(),
  name: z.string(),
  workspaceId: z.string(),
  accesses: z.array(z.object({ scope: z.string(), cacheId: z.string().nullable() })),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  createdAt: z.string(),
});

export const serviceTokenCreatedSchema = serviceTokenSchema.extend({
  token: z.string().describe('The secret, shown this once; send `Authorization: <id>:<token>`'),
});
