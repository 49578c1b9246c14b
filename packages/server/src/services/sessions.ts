// Console sessions: a random cookie value, stored only as its SHA-256 digest, sliding expiry.
import type { Db } from '../db/store.ts';
import type { User } from '../db/schema.ts';
import {
  deleteSession,
  findSessionUser,
  insertSession,
  touchSession,
} from '../db/queries/sessions.ts';
import { newSecret, sha256 } from './crypto.ts';

export const SESSION_TTL_MS = 14 * 24 * 3600_000;
/** Extending expiry on every request would write on every page view; once an hour is enough. */
const TOUCH_INTERVAL_MS = 3600_000;

export async function createSession(
  db: Db,
  userId: string,
  meta: { ip: string | null; userAgent: string | null },
): Promise<string> {
  const token = newSecret();
  await insertSession(db, {
    idHash: sha256(token),
    userId,
    expiresAt: new Date(Date.now() + SESSION_TTL_MS),
    ...meta,
  });
  return token;
}

/** The session's user; `renewed` says the expiry moved, so the cookie should move with it. */
export async function resolveSession(
  db: Db,
  token: string,
): Promise<{ user: User; renewed: boolean } | undefined> {
  const now = new Date();
  const idHash = sha256(token);
  const found = await findSessionUser(db, idHash, now);
  if (!found) return undefined;
  if (now.getTime() - found.lastSeenAt.getTime() <= TOUCH_INTERVAL_MS)
    return { user: found.user, renewed: false };
  await touchSession(db, idHash, now, new Date(now.getTime() + SESSION_TTL_MS));
  return { user: found.user, renewed: true };
}

export async function endSession(db: Db, token: string): Promise<void> {
  await deleteSession(db, sha256(token));
}
