// Sign-up (user + personal workspace), password log-in, and disabling an account.
import { signUpInputSchema, type SignUpInput } from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import type { User } from '../db/schema.ts';
import { findUserByEmail, insertUser, setUserDisabled } from '../db/queries/users.ts';
import { deleteGrantsWhere } from '../db/queries/oauth-store.ts';
import { deleteSessionsOfUser } from '../db/queries/sessions.ts';
import { listWorkspacesOfUser } from '../db/queries/workspaces.ts';
import { credentialsRevoked } from './revocation-events.ts';
import { insertAuditEvent } from '../db/queries/audit-events.ts';
import { Problem } from '../problem.ts';
import { newId } from './crypto.ts';
import { decoyHash, hashPassword, verifyPassword } from './passwords.ts';
import { isUniqueViolation, parseInput } from './validation.ts';
import { createWorkspaceWithAdmin } from './workspaces.ts';
import type { LoginThrottle } from './login-throttle.ts';

export interface SignUpResult {
  user: User;
  personalWorkspace: { id: string; slug: string; name: string };
}

export async function signUp(db: Db, input: SignUpInput): Promise<SignUpResult> {
  const { email, password, name } = parseInput(signUpInputSchema, input);
  const passwordHash = await hashPassword(password);
  try {
    return await db.transaction().execute(async (tx) => {
      const user = await insertUser(tx, {
        id: newId('usr'),
        email,
        name,
        password_hash: passwordHash,
      });
      const label = name || email.split('@')[0] || 'Personal';
      const personalWorkspace = await createWorkspaceWithAdmin(
        tx,
        user.id,
        `${label}'s workspace`,
        {
          personal: true,
        },
      );
      await insertAuditEvent(tx, {
        workspaceId: personalWorkspace.id,
        actorUserId: user.id,
        action: 'user.signed_up',
        target: user.id,
      });
      return { user, personalWorkspace };
    });
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw new Problem('user.email_taken', 409, 'An account with this email already exists.', {
        errors: [{ path: 'email', message: 'An account with this email already exists' }],
      });
    }
    throw error;
  }
}

/** Checks a password log-in; attempts are counted, and a failure never says which part was wrong. */
export async function logIn(
  db: Db,
  throttle: LoginThrottle,
  attempt: { email: string; password: string; ip: string },
): Promise<User> {
  const email = attempt.email.trim().toLowerCase();
  await throttle.attempt(email, attempt.ip);
  const user = email ? await findUserByEmail(db, email) : undefined;
  const ok = await verifyPassword(attempt.password, user?.password_hash ?? (await decoyHash()));
  if (!user || !ok)
    throw new Problem('auth.invalid_credentials', 401, 'The email or password is incorrect.');
  // Said only to someone who knows the password, so it tells a stranger nothing.
  if (user.disabled_at)
    throw new Problem(
      'auth.account_disabled',
      403,
      'This account is disabled. Ask the operator of this Edgegate to enable it again.',
    );
  await throttle.recordSuccess(email);
  return user;
}

export interface DisabledAccount {
  /** False when the account already was disabled (nothing else was done). */
  changed: boolean;
  endedSessions: number;
  revokedAuthorizations: number;
}

/**
 * Disables an account: it cannot log in, its console sessions end, the apps it authorized lose
 * their tokens (a new authorization needs a log-in), and its API keys are refused while it stays
 * disabled. Each of its workspaces' audit logs records it.
 */
export async function disableAccount(db: Db, userId: string): Promise<DisabledAccount> {
  const outcome = await db.transaction().execute(async (tx) => {
    if (!(await setUserDisabled(tx, userId, new Date())))
      return { changed: false, endedSessions: 0, revokedAuthorizations: 0 };
    const endedSessions = await deleteSessionsOfUser(tx, userId);
    const revokedAuthorizations = await deleteGrantsWhere(
      tx,
      (grants) => grants.where('user_id', '=', userId),
      { reason: 'user_disabled', actorUserId: null },
    );
    for (const workspace of await listWorkspacesOfUser(tx, userId)) {
      await insertAuditEvent(tx, {
        workspaceId: workspace.id,
        actorUserId: null,
        action: 'user.disabled',
        target: userId,
        data: { via: 'operator' },
      });
    }
    return { changed: true, endedSessions, revokedAuthorizations };
  });
  if (outcome.changed) credentialsRevoked();
  return outcome;
}

/** Lets a disabled account log in again; its API keys work again, its old sessions stay ended. */
export async function enableAccount(db: Db, userId: string): Promise<boolean> {
  const changed = await db.transaction().execute(async (tx) => {
    if (!(await setUserDisabled(tx, userId, null))) return false;
    for (const workspace of await listWorkspacesOfUser(tx, userId)) {
      await insertAuditEvent(tx, {
        workspaceId: workspace.id,
        actorUserId: null,
        action: 'user.enabled',
        target: userId,
        data: { via: 'operator' },
      });
    }
    return true;
  });
  // Refusals of its keys are cached like answers are: forget them, so they work again at once.
  if (changed) credentialsRevoked();
  return changed;
}
