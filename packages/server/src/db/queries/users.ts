// SQL for users.
import type { Db } from '../store.ts';
import type { NewUser, User } from '../schema.ts';

export async function insertUser(db: Db, user: NewUser): Promise<User> {
  return db.insertInto('users').values(user).returningAll().executeTakeFirstOrThrow();
}

export async function findUserByEmail(db: Db, email: string): Promise<User | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .executeTakeFirst();
}

export async function findUserById(db: Db, id: string): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Sets or clears `disabled_at`; false when it already was so (nothing changed). */
export async function setUserDisabled(
  db: Db,
  userId: string,
  disabledAt: Date | null,
): Promise<boolean> {
  const result = await db
    .updateTable('users')
    .set({ disabled_at: disabledAt })
    .where('id', '=', userId)
    .where('disabled_at', disabledAt ? 'is' : 'is not', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export interface UserListing {
  id: string;
  email: string;
  name: string;
  createdAt: Date;
  disabledAt: Date | null;
  /** Slugs of the workspaces the user belongs to. */
  workspaces: string[];
}

/** Every user, oldest first, with the slugs of their workspaces (for the operator). */
export async function listUsersWithWorkspaces(db: Db): Promise<UserListing[]> {
  const rows = await db
    .selectFrom('users')
    .leftJoin('memberships', 'memberships.user_id', 'users.id')
    .leftJoin('workspaces', 'workspaces.id', 'memberships.workspace_id')
    .select([
      'users.id',
      'users.email',
      'users.name',
      'users.created_at as createdAt',
      'users.disabled_at as disabledAt',
      'workspaces.slug',
    ])
    .orderBy('users.created_at')
    .orderBy('users.id')
    .orderBy('workspaces.slug')
    .execute();
  const users = new Map<string, UserListing>();
  for (const { slug, ...user } of rows) {
    const listed = users.get(user.id) ?? { ...user, workspaces: [] };
    if (slug) listed.workspaces.push(slug);
    users.set(user.id, listed);
  }
  return [...users.values()];
}
