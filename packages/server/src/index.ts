// The control plane's public surface, used by the CLI and by tests.
export { buildApp, type AppDeps } from './app.ts';
export {
  loadConfig,
  parseConfig,
  ensureSecret,
  settings,
  ConfigError,
  type Config,
  type SettingName,
} from './config.ts';
export {
  readConfigFile,
  settingSources,
  shownValue,
  type FileSettings,
  type SettingSource,
} from './config-file.ts';
export { openStore, migrateToLatest, type Store, type Db } from './db/store.ts';
export { createLogger } from './logger.ts';
export { startServer, type Planes, type RunningServer } from './main.ts';
export { Problem } from './problem.ts';
export { VERSION } from './version.ts';
export * as admin from './admin/commands.ts';
export * as adminCredentials from './admin/credentials.ts';
export * as adminCaches from './admin/caches.ts';
export type { Demo } from './admin/demo.ts';
export { adminSocketPath } from './admin/socket.ts';
export { lockDataDir, DataDirBusyError } from './admin/data-dir-lock.ts';
export {
  listAppliedMigrations,
  migrationStatus,
  type MigrationStatus,
} from './db/migrations/status.ts';
export { createKeyring, rotateKeys, type RotationReport } from './connect/keyring.ts';
