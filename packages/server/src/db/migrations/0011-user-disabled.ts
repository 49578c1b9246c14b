// An operator can disable an account (`edgegate users disable`): it then cannot log in, and its
// sessions, authorizations and API keys stop working, until it is enabled again.
import type { MigrationStatements } from './index.ts';

export const userDisabled: MigrationStatements = [
  `ALTER TABLE users ADD COLUMN disabled_at timestamptz`,
];
