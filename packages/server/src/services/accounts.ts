// Sign-up (user + personal workspace) and password log-in.
import { signUpInputSchema, type SignUpInput } from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import type { User } from '../db/schema.ts';
import { findUserByEmail, insertUser } from '../db/queries/users.ts';
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
  await throttle.recordSuccess(email);
  return user;
}
