// The partner's own user and metadata, given when it mints a connect session and kept on the
// connection the session makes, so the partner can tell whose database a connection is.
import type { MigrationStatements } from './index.ts';

export const connectEndUser: MigrationStatements = [
  `ALTER TABLE connect_sessions ADD COLUMN end_user jsonb`,
  `ALTER TABLE connect_sessions ADD COLUMN metadata jsonb`,
  `ALTER TABLE connections ADD COLUMN end_user jsonb`,
  `ALTER TABLE connections ADD COLUMN metadata jsonb`,
];
