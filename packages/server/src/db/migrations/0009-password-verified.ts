// Whether the origin checked the connection's password when it was last tested: a server that
// trusts the user (Postgres `trust`) lets any password in. NULL for connections saved before.
import type { MigrationStatements } from './index.ts';

export const passwordVerified: MigrationStatements = [
  `ALTER TABLE connections ADD COLUMN password_verified boolean`,
];
