// The engine's storage adapter on our store. Bearer values (codes, device codes, access and
// refresh tokens) are kept only as SHA-256 digests; code and refresh-token consumption is one
// conditional UPDATE, so of two concurrent exchanges exactly one wins; clients come from the app
// registry.
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { engineRoute, requestState } from './request-state.ts';
import { pendingGrantBinding } from './grant-binding.ts';
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
  findTokenWithGrant,
  upsertGrant,
  upsertPayload,
  upsertToken,
} from '../db/queries/oauth-store.ts';
import { findAppByClientId, listLiveSecretHashes } from '../db/queries/oauth-apps.ts';
import { sha256 } from '../services/crypto.ts';
import { revokeGrant } from '../services/grants.ts';
import { onAppChanged } from '../services/oauth-apps.ts';
import { isLoopbackHost } from '@edgegate/contract';

/** Models whose id is a bearer secret: stored hashed, never in plaintext. */
const HASHED_MODELS = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'ClientCredentials',
]);

/**
 * The device code is a bearer secret too, but it lives in oauth_payloads because the engine also
 * finds it by user code. Its row is keyed by sha256(device_code) and its payload has no jti.
 * `findByUserCode` cannot give the plaintext back, and the engine needs a jti from it only to
 * save the code again (code_verification.js) and to copy into the Interaction, by which
 * device_resume finds it (authorization/device.js). So it gets a handle, this prefix plus the
 * digest (nanoid ids never contain ':'). A handle is honoured only on those two browser routes,
 * never at the token endpoint: nothing read from the store can be redeemed by a device.
 */
const DEVICE_CODE_HANDLE = 'digest:';
const DEVICE_CODE_HANDLE_ROUTES = new Set(['code_verification', 'device_resume']);

function deviceCodeKey(id: string): string {
  const { route } = engineRoute();
  if (id.startsWith(DEVICE_CODE_HANDLE) && route && DEVICE_CODE_HANDLE_ROUTES.has(route))
    return id.slice(DEVICE_CODE_HANDLE.length);
  return sha256(id);
}

/** Why the engine revoked a grant, for the audit log. */
function engineRevocationReason(): string {
  const { route, grantType } = engineRoute();
  if (route === 'revocation') return 'revoked_by_app';
  if (grantType === 'refresh_token') return 'refresh_token_reuse';
  if (grantType === 'authorization_code') return 'code_replay';
  if (grantType === 'urn:ietf:params:oauth:grant-type:device_code') return 'device_code_replay';
  return 'revoked_by_engine';
}

/** Concurrent refreshes of one token within this window are not treated as theft. */
export const REFRESH_REUSE_GRACE_MS = 5_000;

/**
 * How long after its redemption a second use of a refresh token is still a race. A code has none:
 * whoever presents it a second time, however soon, replays it and the grant is revoked (RFC 6749
 * §4.1.2, RFC 9700), since an attacker racing the real client looks exactly like that.
 */
const RACE_WINDOWS_MS: Record<string, number> = {
  RefreshToken: REFRESH_REUSE_GRACE_MS,
};

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

/**
 * `db` serves what needs a transaction (revoking a grant); `pipelined` (store.pipelined) the single
 * statements of the token and introspection paths.
 */
export function createAdapterClass(
  db: Db,
  pipelined: Db = db,
): {
  AdapterClass: new (model: string) => Adapter;
  clients: ClientRegistry;
  /** Stops listening for app changes (when the app closes). */
  dispose: () => void;
} {
  const clientMemo = new Map<string, { at: number; client: RegisteredClient | undefined }>();
  const dispose = onAppChanged((clientId) => clientMemo.delete(clientId));

  async function lookup(clientId: string): Promise<RegisteredClient | undefined> {
    const memo = clientMemo.get(clientId);
    if (memo && Date.now() - memo.at < CLIENT_MEMO_MS) return memo.client;
    const app = await findAppByClientId(pipelined, clientId);
    let client: RegisteredClient | undefined;
    if (app) {
      const secretHashes = await listLiveSecretHashes(pipelined, app.id, new Date());
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
        else await upsertToken(pipelined, row);
        return;
      }
      if (this.model === 'Grant') {
        // Saved from the consent page: in its transaction, bound to the chosen workspace.
        const binding = pendingGrantBinding();
        const store = binding?.db ?? db;
        const app = await findAppByClientId(store, String(payload.clientId));
        if (!app) throw new errors.InvalidClient('the app no longer exists');
        const created = await upsertGrant(store, {
          id,
          appId: app.id,
          userId: String(payload.accountId),
          workspaceId: binding?.workspaceId ?? null,
          cacheIds: binding?.cacheIds ?? null,
          scopes: grantScopes(payload),
          payload,
          expiresAt,
        });
        if (binding) binding.created = created;
        return;
      }
      const deviceCode = this.model === 'DeviceCode';
      const { jti: _jti, ...withoutJti } = payload;
      await upsertPayload(pipelined, {
        model: this.model,
        id: this.payloadKey(id),
        payload: deviceCode ? withoutJti : payload,
        grantId: payload.grantId ?? null,
        uid: payload.uid ?? null,
        userCode: payload.userCode ?? null,
        expiresAt,
      });
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model === 'Client') return findClient(id);
      if (HASHED_MODELS.has(this.model)) {
        const row = await findTokenWithGrant(pipelined, sha256(id), this.model);
        if (!row) return undefined;
        const state = requestState();
        if (state && row.grant_id && row.grantPayload) {
          state.grants.set(row.grant_id, row.grantPayload as AdapterPayload);
          if (row.role) state.members.add(`${row.grantUserId} ${row.grant_id}`);
        }
        const payload = { ...row.payload, jti: id } as AdapterPayload;
        // Inside its race window a second use of a refresh token is a race, not theft: the atomic
        // redemption refuses it (token-writes.ts) instead of the engine revoking the grant. A
        // redeemed code is always reported consumed, and the engine revokes its grant.
        const consumedMsAgo = row.consumedMsAgo === null ? undefined : Number(row.consumedMsAgo);
        if (consumedMsAgo !== undefined && consumedMsAgo >= (RACE_WINDOWS_MS[this.model] ?? 0))
          payload.consumed = true;
        return payload;
      }
      if (this.model === 'Grant') {
        const prefetched = requestState()?.grants.get(id);
        return (
          prefetched ?? ((await findGrantPayload(pipelined, id)) as AdapterPayload | undefined)
        );
      }
      const row = await findPayload(pipelined, this.model, { id: this.payloadKey(id) });
      return this.fromPayloadRow(row, this.model === 'DeviceCode' ? id : undefined);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return this.fromPayloadRow(await findPayload(pipelined, this.model, { uid }));
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const row = await findPayload(pipelined, this.model, { userCode });
      return this.fromPayloadRow(row, row && DEVICE_CODE_HANDLE + row.id);
    }

    /** The row id in oauth_payloads: a device code's digest, any other model's own id. */
    private payloadKey(id: string): string {
      return this.model === 'DeviceCode' ? deviceCodeKey(id) : id;
    }

    private fromPayloadRow(
      row: { payload: Record<string, unknown>; consumed_at: Date | null } | undefined,
      jti?: string,
    ) {
      if (!row) return undefined;
      return {
        ...row.payload,
        ...(jti ? { jti } : {}),
        ...(row.consumed_at ? { consumed: true } : {}),
      } as AdapterPayload;
    }

    async consume(id: string): Promise<void> {
      if (!HASHED_MODELS.has(this.model)) {
        // A device code: two polls racing after approval, exactly one gets the tokens.
        if (!(await consumePayload(pipelined, this.model, this.payloadKey(id))))
          throw new errors.InvalidGrant(`${this.model} already consumed`);
        return;
      }
      const idHash = sha256(id);
      const writes = requestState()?.tokenWrites;
      if (writes) {
        // Decided atomically with the new tokens' insert, where a replay is also told from a race
        // (token-writes.ts). Codes and refresh tokens are only ever redeemed at the token endpoint.
        writes.consume = { idHash, model: this.model };
        return;
      }
      if (!(await consumeToken(pipelined, idHash)))
        throw new errors.InvalidGrant(`${this.model} already consumed`);
    }

    async destroy(id: string): Promise<void> {
      if (HASHED_MODELS.has(this.model)) return deleteToken(pipelined, sha256(id));
      // The engine destroys a grant only when revoking it (helpers/revoke.js).
      if (this.model === 'Grant')
        return revokeGrant(db, id, { reason: engineRevocationReason(), actorUserId: null });
      return deletePayload(pipelined, this.model, this.payloadKey(id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      if (HASHED_MODELS.has(this.model)) return deleteTokensOfGrant(pipelined, grantId, this.model);
      return deletePayloadsOfGrant(pipelined, this.model, grantId);
    }
  }

  return { AdapterClass: StoreAdapter, clients: { lookup }, dispose };
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
