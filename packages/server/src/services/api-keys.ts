// API keys (the Upstash partner pattern): a person's key for one workspace, minted by an OAuth
// access token or another key of theirs, and never wider than the credential that mints it.
//
// Who sees which keys: a credential of a person lists and deletes that person's keys in its
// workspace (deleting the key in use is allowed). A credential that came through an OAuth app
// (a partner's token, or a key that partner minted) sees only the keys minted through that same
// app, so one partner cannot list or delete another's. A service token has no person: 403.
import { auditOwnedWebhooks } from '../db/queries/webhook-owners.ts';
import type { z } from 'zod';
import {
  API_SCOPES,
  apiKeyCreateSchema,
  type apiKeySchema,
  type ApiKeyCreate,
} from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import {
  deleteApiKey as deleteApiKeyRow,
  findApiKeyOfOwner,
  insertApiKey,
  listApiKeysOfOwner,
  type ApiKeyOwner,
  type ApiKeyRow,
} from '../db/queries/api-keys.ts';
import { listCachesInWorkspace } from '../db/queries/caches.ts';
import { insertAuditEvent } from '../db/queries/audit-events.ts';
import { Problem, type FieldError } from '../problem.ts';
import { childExpiry, insufficientScope, type Principal } from '../plugins/credential-auth.ts';
import { newId, newSecret, sha256 } from './crypto.ts';
import { credentialsRevoked } from './revocation-events.ts';
import { parseInput } from './validation.ts';

export type ApiKey = z.infer<typeof apiKeySchema>;

const KEY_PREFIX = 'egk_';
/** `egk_` and the next 8 characters: enough to recognise a key, far too little to guess it. */
const SHOWN_PREFIX_LENGTH = KEY_PREFIX.length + 8;

export function toApiKey(row: ApiKeyRow): ApiKey {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    userId: row.user_id,
    workspaceId: row.workspace_id,
    scopes: row.scopes,
    cacheIds: row.cache_ids,
    expiresAt: row.expires_at?.toISOString() ?? null,
    lastUsedAt: row.last_used_at?.toISOString() ?? null,
    createdAt: row.created_at.toISOString(),
  };
}

export interface CacheReference {
  /** Where the id sits in the request body, e.g. `cacheIds.0`. */
  path: string;
  cacheId: string;
}

export function cacheReferenceProblem(references: readonly CacheReference[], why: string) {
  const errors: FieldError[] = references.map((ref) => ({
    path: ref.path,
    message: `${ref.cacheId} ${why}`,
  }));
  return new Problem(
    'validation_failed',
    422,
    errors.map((e) => `${e.path}: ${e.message}`).join('; '),
    { errors },
  );
}

/** 422 naming each reference that is not a cache of the workspace (another workspace's included). */
export async function requireCachesOfWorkspace(
  db: Db,
  workspaceId: string,
  references: readonly CacheReference[],
): Promise<void> {
  const ids = [...new Set(references.map((ref) => ref.cacheId))];
  if (ids.length === 0) return;
  const found = new Set(
    (await listCachesInWorkspace(db, workspaceId, { limit: ids.length, onlyIds: ids })).map(
      (cache) => cache.id,
    ),
  );
  const unknown = references.filter((ref) => !found.has(ref.cacheId));
  if (unknown.length > 0) throw cacheReferenceProblem(unknown, 'is not a cache of this workspace');
}

function ownerOf(principal: Principal): ApiKeyOwner & { userId: string } {
  if (principal.userId === null) {
    throw new Problem(
      'apikey.person_required',
      403,
      'API keys belong to a person, and a service token belongs to the workspace: create or manage API keys with an OAuth access token or an API key.',
    );
  }
  return {
    workspaceId: principal.workspaceId,
    userId: principal.userId,
    clientId: principal.clientId ?? undefined,
  };
}

/** The caches every one of `scopes` reaches for this principal; null when all of the workspace. */
function reachOf(principal: Principal, scopes: readonly string[]): ReadonlySet<string> | null {
  const narrowed = scopes.flatMap((scope) => principal.access.get(scope) ?? []);
  const [first, ...rest] = narrowed;
  if (!first) return null;
  return new Set([...first].filter((id) => rest.every((caches) => caches.has(id))));
}

/** The key's row and its secret, which is returned this once and stored only as a digest. */
export async function createApiKey(
  db: Db,
  principal: Principal,
  input: ApiKeyCreate,
): Promise<{ row: ApiKeyRow; key: string }> {
  const owner = ownerOf(principal);
  const fields = parseInput(apiKeyCreateSchema, input);
  const scopes = fields.scopes
    ? [...new Set(fields.scopes)]
    : API_SCOPES.filter((scope) => principal.access.has(scope));
  const missing = scopes.filter((scope) => !principal.access.has(scope));
  if (missing.length > 0) {
    throw insufficientScope(
      missing,
      `A key cannot be wider than the credential creating it, which lacks ${missing.join(', ')}.`,
    );
  }
  const reach = reachOf(principal, scopes);
  let cacheIds: string[] | null = reach ? [...reach].sort() : null;
  if (fields.cacheIds) {
    const references = fields.cacheIds.map((cacheId, i) => ({ path: `cacheIds.${i}`, cacheId }));
    await requireCachesOfWorkspace(db, principal.workspaceId, references);
    const outside = references.filter((ref) => reach && !reach.has(ref.cacheId));
    if (outside.length > 0) {
      throw cacheReferenceProblem(
        outside,
        `is outside what the creating credential reaches with ${scopes.join(', ')}`,
      );
    }
    cacheIds = [...new Set(fields.cacheIds)];
  }
  const expiresAt = childExpiry(principal, fields.expiresAt);
  const key = newSecret(KEY_PREFIX);
  const row = await db.transaction().execute(async (tx) => {
    const inserted = await insertApiKey(tx, {
      id: newId('ak'),
      workspaceId: owner.workspaceId,
      userId: owner.userId,
      name: fields.name,
      prefix: key.slice(0, SHOWN_PREFIX_LENGTH),
      tokenHash: sha256(key),
      scopes,
      cacheIds,
      createdByClientId: principal.clientId,
      expiresAt,
    });
    await insertAuditEvent(tx, {
      workspaceId: owner.workspaceId,
      actorUserId: owner.userId,
      action: 'apikey.created',
      target: inserted.id,
      data: {
        name: inserted.name,
        scopes,
        cacheIds,
        via: principal.kind,
        clientId: principal.clientId,
      },
    });
    return inserted;
  });
  return { row, key };
}

export async function listApiKeys(
  db: Db,
  principal: Principal,
  page: { afterId?: string | undefined; limit: number },
): Promise<ApiKeyRow[]> {
  return listApiKeysOfOwner(db, ownerOf(principal), page);
}

// A narrowed or read-only key may delete itself and keys no wider than it, never a wider one: the
// deleting credential needs every scope of the key, on every cache the key reaches.
function assertCovers(
  principal: Principal,
  scopes: readonly string[],
  cacheIds: readonly string[] | null,
) {
  const uncovered = scopes.filter((scope) => {
    const reach = principal.access.get(scope);
    if (reach === undefined) return true;
    if (reach === null) return false;
    return cacheIds === null || cacheIds.some((id) => !reach.has(id));
  });
  if (uncovered.length > 0) {
    throw insufficientScope(
      uncovered,
      `This key reaches more than the credential deleting it (${uncovered.join(', ')}); delete it with a credential that covers it, or in the console.`,
    );
  }
}

/** Deletes one of the caller's keys (404 for anyone else's); it stops working at once. */
export async function deleteApiKey(db: Db, principal: Principal, id: string): Promise<void> {
  const owner = ownerOf(principal);
  const current = await findApiKeyOfOwner(db, owner, id);
  if (!current) throw new Problem('apikey.not_found', 404, `No API key ${id} of yours here.`);
  assertCovers(principal, current.scopes, current.cache_ids);
  await db.transaction().execute(async (tx) => {
    await auditOwnedWebhooks(tx, (eb) => eb('webhooks.api_key_id', '=', current.id), {
      reason: 'API key deleted',
      actorUserId: owner.userId,
    });
    await deleteApiKeyRow(tx, current.id);
    await insertAuditEvent(tx, {
      workspaceId: owner.workspaceId,
      actorUserId: owner.userId,
      action: 'apikey.deleted',
      target: current.id,
      data: { name: current.name, via: principal.kind },
    });
  });
  credentialsRevoked();
}
