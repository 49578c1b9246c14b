// Sessions of a cache on the edge that runs in this process: listing them and ending one (the API's
// SHOW CLIENTS and KILL). A control plane without an edge of its own cannot see any.
import type { EdgeSession } from '@edgegate/contract';
import { insertAuditEvent } from '../db/queries/audit-events.ts';
import type { Db } from '../db/store.ts';
import type { Principal } from '../plugins/credential-auth.ts';
import { Problem } from '../problem.ts';
import { getCache } from './caches.ts';

/** The part of a running edge these routes use. */
export interface EdgeSessions {
  sessions(): Promise<EdgeSessionOnEdge[]>;
  kill(id: string): Promise<boolean>;
}

/** A session as the edge reports it: the cache may still be unknown while it logs in. */
export type EdgeSessionOnEdge = Omit<EdgeSession, 'cacheId'> & { cacheId: string | null };

function noEdge(): Problem {
  return new Problem(
    'sessions.no_edge',
    501,
    'This control plane runs no edge (edgegate server): sessions are listed by the process that runs the edge, `edgegate start` (this API) or `edgegate edge` (`edgegate sessions list` on its machine).',
  );
}

async function sessionsOf(edge: EdgeSessions, cacheId: string): Promise<EdgeSession[]> {
  const all = await edge.sessions();
  return all
    .filter((session): session is EdgeSession => session.cacheId === cacheId)
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
}

export async function listCacheSessions(
  db: Db,
  principal: Principal,
  cacheId: string,
  edge: EdgeSessions | undefined,
): Promise<EdgeSession[]> {
  const cache = await getCache(db, principal, cacheId, 'caches:read');
  if (edge === undefined) throw noEdge();
  return sessionsOf(edge, cache.id);
}

/** Ends one session of the cache: its client gets 57P01 (MySQL: error 1927). */
export async function endCacheSession(
  db: Db,
  principal: Principal,
  cacheId: string,
  sessionId: string,
  edge: EdgeSessions | undefined,
): Promise<void> {
  const cache = await getCache(db, principal, cacheId, 'caches:write');
  if (edge === undefined) throw noEdge();
  const session = (await sessionsOf(edge, cache.id)).find(
    (candidate) => candidate.id === sessionId,
  );
  // A session of another cache (of this workspace or another) is not found here either.
  if (session === undefined || !(await edge.kill(session.id))) {
    throw new Problem(
      'session.not_found',
      404,
      `No open session ${sessionId} of cache ${cache.id} on this edge.`,
    );
  }
  await insertAuditEvent(db, {
    workspaceId: principal.workspaceId,
    actorUserId: principal.userId,
    action: 'cache.session_ended',
    target: cache.id,
    data: {
      session: session.id,
      protocol: session.protocol,
      user: session.user,
      clientAddress: session.clientAddress,
      via: principal.kind,
    },
  });
}
