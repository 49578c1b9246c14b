// What one request to the engine remembers between adapter calls: grants read together with a
// token (so validation does not read them again) and, on the token endpoint, the writes that
// are deferred to one atomic statement.
import Provider, { type AdapterPayload } from 'oidc-provider';

export interface TokenRow {
  idHash: string;
  kind: string;
  grantId: string | null;
  payload: Record<string, unknown>;
  expiresAt: Date;
}

export interface TokenWrites {
  /** The code or refresh token this request redeems, if any. */
  consume?: { idHash: string; model: string };
  inserts: TokenRow[];
}

export interface RequestState {
  grants: Map<string, AdapterPayload>;
  /** `${userId} ${grantId}` of grants whose user still belongs to the grant's workspace. */
  members: Set<string>;
  /** Present on the token endpoint only. */
  tokenWrites: TokenWrites | undefined;
}

export function requestState(): RequestState | undefined {
  const ctx = Provider.ctx;
  if (!ctx) return undefined;
  const state = ctx.state as { edgegate?: RequestState };
  state.edgegate ??= {
    grants: new Map(),
    members: new Set(),
    tokenWrites: ctx.oidc?.route === 'token' ? { inserts: [] } : undefined,
  };
  return state.edgegate;
}

/** Whether this request already learnt that the user may use the grant (see findTokenWithGrant). */
export function prefetchedMembership(userId: string, grantId: string): boolean {
  return requestState()?.members.has(`${userId} ${grantId}`) ?? false;
}

/** The engine route (and, at the token endpoint, the grant type) of the request being served. */
export function engineRoute(): { route?: string; grantType?: string } {
  const oidc = Provider.ctx?.oidc;
  const grantType = oidc?.params?.grant_type;
  return {
    ...(oidc?.route ? { route: oidc.route } : {}),
    ...(typeof grantType === 'string' ? { grantType } : {}),
  };
}
