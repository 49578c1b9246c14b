// What a startup packet says: the cache (the application_name up to ':' or '/'), the parameters
// the origin gets instead, and who the session is for the cache key.
import type { SessionIdentity } from '../../core/session-key.ts';

// Parameters that are not settings: never part of the cache key.
const NOT_SETTINGS = new Set(['application_name', 'user', 'database']);

export function readStartup(parameters: ReadonlyMap<string, string>): {
  cacheId: string;
  forwarded: Map<string, string>;
  identity: SessionIdentity;
} {
  const applicationName = parameters.get('application_name') ?? '';
  const separator = applicationName.search(/[:/]/);
  const cacheId = separator < 0 ? applicationName : applicationName.slice(0, separator);
  const clientApplication = separator < 0 ? '' : applicationName.slice(separator + 1);
  const forwarded = new Map<string, string>();
  const startupSettings = new Map<string, string>();
  for (const [name, value] of parameters) {
    if (name === 'application_name') continue;
    forwarded.set(name, value);
    if (!NOT_SETTINGS.has(name)) startupSettings.set(name, value);
  }
  if (clientApplication !== '') forwarded.set('application_name', clientApplication);
  const user = parameters.get('user') ?? '';
  const database = parameters.get('database') ?? user;
  return { cacheId, forwarded, identity: { cacheId, database, user, startupSettings } };
}
