// `edgegate demo`'s server half: a demo user (with their workspace), an OAuth app and a cache in
// front of the demo origin, and the edge string that reaches it. Runs in the server that owns the
// store and the edge, so the string names the edge's real port.
import { randomBytes } from 'node:crypto';
import { API_SCOPES, toEdgeConnectionString } from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import type { Principal } from '../plugins/credential-auth.ts';
import { Problem } from '../problem.ts';
import { signUp } from '../services/accounts.ts';
import { createCache, type OriginPolicy } from '../services/caches.ts';
import { edgePortFor, type EdgeAddress } from '../services/connection-strings.ts';
import { createApp } from '../services/oauth-apps.ts';

export interface DemoInput {
  /** Where the demo origin listens (loopback). */
  originPort: number;
}

export interface Demo {
  email: string;
  password: string;
  clientId: string;
  clientSecret: string;
  cacheId: string;
  connectionString: string;
  workspace: string;
}

export interface DemoDeps {
  originPolicy: OriginPolicy;
  /** Null when this process runs no edge (`edgegate server`): the demo needs one. */
  edge: EdgeAddress | null;
}

export async function createDemo(db: Db, input: DemoInput, deps: DemoDeps): Promise<Demo> {
  if (!deps.edge)
    throw new Problem(
      'demo.no_edge',
      409,
      'The running server has no Postgres edge (it runs `edgegate server`): run the demo next to `edgegate start`.',
    );
  if (deps.originPolicy.privateRanges === 'deny')
    throw new Problem(
      'demo.origin_denied',
      409,
      'The running server refuses loopback origins (ORIGIN_PRIVATE=deny), and the demo origin is on 127.0.0.1: run it next to a server with ORIGIN_PRIVATE=allow (the default).',
    );
  const tag = randomBytes(4).toString('hex');
  const email = `demo-${tag}@example.com`;
  const password = randomBytes(12).toString('base64url');
  const { user, personalWorkspace } = await signUp(db, { email, password, name: 'Demo' });
  const app = await createApp(
    db,
    user.id,
    { kind: 'user', userId: user.id },
    {
      name: 'Demo partner app',
      description: 'Made by `edgegate demo` to try the OAuth flow.',
      homepageUrl: 'http://localhost:3000',
      redirectUris: ['http://localhost:3000/callback', 'http://127.0.0.1:3000/callback'],
      scopes: [...API_SCOPES, 'offline_access'],
    },
  );
  const principal: Principal = {
    kind: 'console',
    credentialId: user.id,
    userId: user.id,
    workspaceId: personalWorkspace.id,
    workspace: {
      id: personalWorkspace.id,
      name: personalWorkspace.name,
      slug: personalWorkspace.slug,
      createdAt: new Date(),
    },
    clientId: null,
    access: new Map(API_SCOPES.map((scope) => [scope, null])),
    expiresAt: null,
  };
  const cache = await createCache(
    db,
    principal,
    {
      name: 'Demo shop (sample data)',
      type: 'postgres',
      hostname: '127.0.0.1',
      port: input.originPort,
      defaultMode: 'auto',
      defaultTtlSeconds: 60,
    },
    deps.originPolicy,
  );
  const connectionString = toEdgeConnectionString({
    cacheId: cache.id,
    cacheType: 'postgres',
    connectionString: `postgres://demo@127.0.0.1:${input.originPort}/postgres?sslmode=disable`,
    edgeHost: deps.edge.host,
    edgePort: edgePortFor('postgres', deps.edge),
  });
  return {
    email,
    password,
    clientId: app.clientId,
    clientSecret: app.clientSecret as string,
    cacheId: cache.id,
    connectionString,
    workspace: personalWorkspace.slug,
  };
}
