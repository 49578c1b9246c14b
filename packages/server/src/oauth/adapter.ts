// The engine's storage adapter on our store. Bearer values (codes, access and refresh tokens) are
// kept only as SHA-256 digests; code and refresh-token consumption is one conditional UPDATE, so
// of two concurrent exchanges exactly one wins; clients come from the app registry.
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { requestState } from './request-state.ts';
import type { Db } from '../db/store.ts';
import type { OAuthApp } from '../db/schema.ts';
import {
  consumePayload,
  consumeToken,
  deletePayload,
  deletePayloadsOfGrant,
  deleteToken,
  deleteTokensOfGrant,
  findGrantPayload,
  findPayload,
  findToken,
  findTokenWithGrant,
  upsertGrant,
  upsertPayload,
  upsertToken,
} from '../db/queries/oauth-store.ts';
import { findAppByClientId, listLiveSecretHashes } from '../db/queries/oauth-apps.ts';
import { sha256 } from '../services/crypto.ts';
import { destroyGrant } from '../services/grants.ts';
import { onAppChanged } from '../services/oauth-apps.ts';
import { isLoopbackHost } from '@edgegate/contract';

/** Models whose id is a bearer secret: stored hashed, never in plaintext. */
const HASHED_MODELS = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'ClientCredentials',
]);

/** Concurrent refreshes of one token within this window are not treated as theft. */
export const REFRESH_REUSE_GRACE_MS = 5_000;

/** Client metadata is read on every protocol request; a short memo spares the store. */
const CLIENT_MEMO_MS = 5_000;

export interface RegisteredClient {
  metadata: AdapterPayload;
  /** Digests of the app's live secrets (current and those in a rotation overlap). */
  secretHashes: string[];
  /** What the app may ask for; the consent page can grant no more. */
  scopes: string[];
  app: OAuthApp;
}

export interface ClientRegistry {
  lookup(clientId: string): Promise<RegisteredClient | undefined>;
}

export function createAdapterClass(db: Db): {
  AdapterClass: new (model: string) => Adapter;
  clients: ClientRegistry;
} {
  const clientMemo = new Map<string, { at: number; client: RegisteredClient | undefined }>();
  onAppChanged((clientId) => clientMemo.delete(clientId));

  async function lookup(clientId: string): Promise<RegisteredClient | undefined> {
    const memo = clientMemo.get(clientId);
    if (memo && Date.now() - memo.at < CLIENT_MEMO_MS) return memo.client;
    const app = await findAppByClientId(db, clientId);
    let client: RegisteredClient | undefined;
    if (app) {
      const secretHashes = await listLiveSecretHashes(db, app.id, new Date());
      client = {
        metadata: toClientMetadata(app, secretHashes),
        secretHashes,
        scopes: app.scopes,
        app,
      };
    }
    if (clientMemo.size > 1000) clientMemo.clear();
    clientMemo.set(clientId, { at: Date.now(), client });
    return client;
  }

  async function findClient(clientId: string): Promise<AdapterPayload | undefined> {
    return (await lookup(clientId))?.metadata;
  }

  class StoreAdapter implements Adapter {
    readonly model: string;
    constructor(model: string) {
      this.model = model;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const expiresAt = new Date(Date.now() + expiresIn * 1000);
      if (HASHED_MODELS.has(this.model)) {
        // The jti is the bearer value itself: keep it out of the stored payload.
        const { jti: _jti, ...rest } = payload;
        const row = {
          idHash: sha256(id),
          kind: this.model,
          grantId: payload.grantId ?? null,
          payload: rest,
          expiresAt,
        };
        const writes = requestState()?.tokenWrites;
        if (writes) writes.inserts.push(row);
        else await upsertToken(db, row);
        return;
      }
      if (this.model === 'Grant') {
        const app = await findAppByClientId(db, String(payload.clientId));
        if (!app) throw new errors.InvalidClient('the app no longer exists');
        await upsertGrant(db, {
          id,
          appId: app.id,
          userId: String(payload.accountId),
          scopes: grantScopes(payload),
          payload,
          expiresAt,
        });
        return;
      }
      await upsertPayload(db, {
        model: this.model,
        id,
        payload,
        grantId: payload.grantId ?? null,
        uid: payload.uid ?? null,
        userCode: payload.userCode ?? null,
        expiresAt,
      });
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model === 'Client') return findClient(id);
      if (HASHED_MODELS.has(this.model)) {
        const row = await findTokenWithGrant(db, sha256(id), this.model);
        if (!row) return undefined;
        const state = requestState();
        if (state && row.grant_id && row.grantPayload) {
          state.grants.set(row.grant_id, row.grantPayload as AdapterPayload);
          if (row.role) state.members.add(`${row.grantUserId} ${row.grant_id}`);
        }
        const payload = { ...row.payload, jti: id } as AdapterPayload;
        if (row.consumed_at) {
          // Inside the grace window a second refresh is a race, not a theft: let the atomic
          // consume below refuse it instead of the engine revoking the whole grant.
          const recent = Date.now() - row.consumed_at.getTime() < REFRESH_REUSE_GRACE_MS;
          if (!(this.model === 'RefreshToken' && recent)) payload.consumed = true;
        }
        return payload;
      }
      if (this.model === 'Grant') {
        const prefetched = requestState()?.grants.get(id);
        return prefetched ?? ((await findGrantPayload(db, id)) as AdapterPayload | undefined);
      }
      return this.fromPayloadRow(await findPayload(db, this.model, { id }));
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return this.fromPayloadRow(await findPayload(db, this.model, { uid }));
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return this.fromPayloadRow(await findPayload(db, this.model, { userCode }));
    }

    private fromPayloadRow(
      row: { payload: Record<string, unknown>; consumed_at: Date | null } | undefined,
    ) {
      if (!row) return undefined;
      return { ...row.payload, ...(row.consumed_at ? { consumed: true } : {}) } as AdapterPayload;
    }

    async consume(id: string): Promise<void> {
      if (!HASHED_MODELS.has(this.model)) {
        if (!(await consumePayload(db, this.model, id)))
          throw new errors.InvalidGrant(`${this.model} already consumed`);
        return;
      }
      const idHash = sha256(id);
      const writes = requestState()?.tokenWrites;
      if (writes) {
        // Decided atomically with the new tokens' insert when the response is ready (token-writes.ts).
        writes.consume = { idHash, model: this.model };
        return;
      }
      if (await consumeToken(db, idHash)) return;
      // Someone consumed it first. A second use of a code is a replay: the grant is revoked.
      // A concurrent refresh (inside the grace window) only loses the race.
      if (this.model === 'AuthorizationCode') {
        const row = await findToken(db, idHash, this.model);
        if (row?.grant_id) await destroyGrant(db, row.grant_id);
      }
      throw new errors.InvalidGrant(`${this.model} already consumed`);
    }

    async destroy(id: string): Promise<void> {
      if (HASHED_MODELS.has(this.model)) return deleteToken(db, sha256(id));
      if (this.model === 'Grant') return destroyGrant(db, id);
      return deletePayload(db, this.model, id);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      if (HASHED_MODELS.has(this.model)) return deleteTokensOfGrant(db, grantId, this.model);
      return deletePayloadsOfGrant(db, this.model, grantId);
    }
  }

  return { AdapterClass: StoreAdapter, clients: { lookup } };
}

function grantScopes(payload: AdapterPayload): string[] {
  const scopes = new Set<string>();
  const openid = payload.openid as { scope?: string } | undefined;
  for (const value of [openid?.scope, ...Object.values(payload.resources ?? {})]) {
    if (typeof value === 'string')
      for (const scope of value.split(' ')) if (scope) scopes.add(scope);
  }
  return [...scopes];
}

/** The app as the engine's client metadata (snake_case, validated by the engine). */
function toClientMetadata(
  app: {
    client_id: string;
    client_type: 'confidential' | 'public';
    redirect_uris: string[];
    name: string;
    logo_url: string | null;
    homepage_url: string | null;
  },
  secretHashes: string[],
): AdapterPayload {
  const confidential = app.client_type === 'confidential';
  // Loopback http redirects with any port (RFC 8252) are matched only for native clients.
  const native = app.redirect_uris.some((uri) => {
    const url = new URL(uri);
    return url.protocol === 'http:' && isLoopbackHost(url.hostname);
  });
  return {
    client_id: app.client_id,
    ...(confidential ? { client_secret: secretHashes[0] ?? 'no-live-secret' } : {}),
    token_endpoint_auth_method: confidential ? 'client_secret_basic' : 'none',
    application_type: native ? 'native' : 'web',
    redirect_uris: app.redirect_uris,
    grant_types: [
      'authorization_code',
      'refresh_token',
      'urn:ietf:params:oauth:grant-type:device_code',
    ],
    response_types: ['code'],
    client_name: app.name,
    ...(app.logo_url ? { logo_uri: app.logo_url } : {}),
    ...(app.homepage_url ? { client_uri: app.homepage_url } : {}),
  };
}
