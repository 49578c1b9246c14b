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
export { openStore, migrateToLatest, type Store, type Db } from './db/store.ts';
export { createLogger } from './logger.ts';
export { startServer, type Planes, type RunningServer } from './main.ts';
export { Problem } from './problem.ts';
export * as admin from './admin/commands.ts';
export { adminSocketPath } from './admin/socket.ts';
export { lockDataDir, DataDirBusyError } from './admin/data-dir-lock.ts';
export { listAppliedMigrations } from './db/migrations/status.ts';
export { createKeyring, rotateKeys, type RotationReport } from './connect/keyring.ts';
