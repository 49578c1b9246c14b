// Rewrites an origin connection string into the one that reaches it through the edge (SPEC §6).
import type { CacheType } from './api/caches.ts';

// The rewrite is done on the string itself, never by re-serialising a parsed URL: WHATWG URL
// normalisation would change percent-encoding, case and empty parts, and users compare the result
// with what they pasted. Only the host, the port, the user's cache-id prefix and Postgres's
// `application_name` change; every other byte is copied as written.

export const CONNECTION_STRING_ERROR_CODES = [
  'connection_string.empty',
  'connection_string.invalid',
  'connection_string.invalid_cache_id',
  'connection_string.missing_host',
  'connection_string.missing_user',
  'connection_string.type_mismatch',
] as const;

export type ConnectionStringErrorCode = (typeof CONNECTION_STRING_ERROR_CODES)[number];

/** Bad input from the user; `message` says what is wrong and how to fix it, never echoing secrets. */
export class ConnectionStringError extends Error {
  override readonly name = 'ConnectionStringError';
  readonly code: ConnectionStringErrorCode;

  constructor(code: ConnectionStringErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export interface EdgeConnectionStringInput {
  cacheId: string;
  cacheType: CacheType;
  connectionString: string;
  edgeHost: string;
  edgePort: number;
}

type Dialect = 'postgres' | 'mysql' | 'mssql';

// MySQL and MariaDB caches accept both mysql:// and mariadb:// because the two speak the same wire
// protocol and their drivers accept either scheme; the scheme is kept as the user wrote it.
const DIALECT_OF_CACHE: Record<CacheType, Dialect> = {
  postgres: 'postgres',
  mysql: 'mysql',
  mariadb: 'mysql',
  mssql: 'mssql',
};

const SCHEMES: Record<string, { dialect: Dialect; label: string }> = {
  postgres: { dialect: 'postgres', label: 'Postgres' },
  postgresql: { dialect: 'postgres', label: 'Postgres' },
  mysql: { dialect: 'mysql', label: 'MySQL' },
  mariadb: { dialect: 'mysql', label: 'MariaDB' },
  sqlserver: { dialect: 'mssql', label: 'SQL Server' },
  mssql: { dialect: 'mssql', label: 'SQL Server' },
};

const CACHE_LABEL: Record<CacheType, string> = {
  postgres: 'Postgres',
  mysql: 'MySQL',
  mariadb: 'MariaDB',
  mssql: 'SQL Server',
};

const EXPECTED_FORM: Record<CacheType, string> = {
  postgres:
    'a URL starting with postgres:// or postgresql://, such as postgres://USER:PASSWORD@HOST:5432/DB',
  mysql: 'a URL starting with mysql:// or mariadb://, such as mysql://USER:PASSWORD@HOST:3306/DB',
  mariadb:
    'a URL starting with mariadb:// or mysql://, such as mariadb://USER:PASSWORD@HOST:3306/DB',
  mssql:
    'a sqlserver:// or mssql:// URL, such as sqlserver://HOST:1433;databaseName=DB;user=USER;password=PASSWORD, ' +
    'or an ADO.NET string, such as Server=HOST,1433;Database=DB;User Id=USER;Password=PASSWORD',
};

// Setting names of ADO.NET strings and sqlserver:// properties, lower-cased without spaces.
const SERVER_KEYS = new Set([
  'server',
  'servername',
  'datasource',
  'address',
  'addr',
  'networkaddress',
]);
const USER_KEYS = new Set(['user', 'userid', 'uid', 'username']);
const PORT_KEYS = new Set(['port', 'portnumber']);
// Settings that name a second server the driver would connect to directly, around the edge.
const BYPASS_KEYS = new Set(['failoverpartner', 'failoverpartnerspn']);
const MYSQL_SOCKET_PARAMETER = /[?&](socketpath|socket)=/i;

const CACHE_ID_PATTERN = /^[A-Za-z0-9_]+$/;
const SCHEME_PATTERN = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;

const MISSING_USER =
  'The connection string has no user name. The cache id rides in the username, so the connection string needs a user';

interface Edge {
  /** Host as written in a URL: IPv6 addresses in brackets. */
  urlHost: string;
  /** Host as written in ADO.NET and sqlserver:// settings: IPv6 addresses bare. */
  bareHost: string;
  port: number;
}

interface Rewrite {
  cacheId: string;
  cacheType: CacheType;
  edge: Edge;
}

/** The connection string that reaches the same database through the edge, per SPEC §6. */
export function toEdgeConnectionString(input: EdgeConnectionStringInput): string {
  const edge = toEdge(input.edgeHost, input.edgePort);
  if (!CACHE_ID_PATTERN.test(input.cacheId)) {
    throw new ConnectionStringError(
      'connection_string.invalid_cache_id',
      'The cache id may contain only letters, digits and underscores; copy it exactly as the API returned it.',
    );
  }
  const text = input.connectionString.trim();
  if (text === '') {
    throw new ConnectionStringError(
      'connection_string.empty',
      `The connection string is empty. Paste your origin database's connection string: ${EXPECTED_FORM[input.cacheType]}.`,
    );
  }
  const rewrite: Rewrite = { cacheId: input.cacheId, cacheType: input.cacheType, edge };
  if (/^jdbc:/i.test(text)) {
    throw invalid(
      `JDBC URLs are not accepted: remove the "jdbc:" prefix. Expected ${EXPECTED_FORM[input.cacheType]}.`,
    );
  }
  const scheme = SCHEME_PATTERN.exec(text);
  if (scheme) return rewriteUrl(text, scheme[1] ?? '', rewrite);
  return rewriteAdo(text, rewrite);
}

// The edge's own settings are server configuration, not user input: a bad one is a bug, not a 400.
function toEdge(host: string, port: number): Edge {
  const bareHost = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bareHost === '' || /[\s/?#@[\];,\\]/.test(bareHost)) {
    throw new RangeError(`edgeHost must be a host name or IP address, got ${JSON.stringify(host)}`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`edgePort must be an integer from 1 to 65535, got ${port}`);
  }
  return { urlHost: bareHost.includes(':') ? `[${bareHost}]` : bareHost, bareHost, port };
}

function rewriteUrl(text: string, scheme: string, rewrite: Rewrite): string {
  const known = SCHEMES[scheme.toLowerCase()];
  if (!known) {
    throw invalid(
      `"${scheme}://" is not a database connection string this cache accepts. Expected ${EXPECTED_FORM[rewrite.cacheType]}.`,
    );
  }
  if (known.dialect !== DIALECT_OF_CACHE[rewrite.cacheType]) {
    throw typeMismatch(`a ${known.label} connection string (${scheme}://)`, rewrite.cacheType);
  }
  const head = `${scheme}://`;
  const afterScheme = text.slice(head.length);
  // sqlserver:// also ends its host part at ';', where Microsoft's `;key=value` properties begin.
  const authorityEnd = afterScheme.search(known.dialect === 'mssql' ? /[/?#;]/ : /[/?#]/);
  const authority = authorityEnd < 0 ? afterScheme : afterScheme.slice(0, authorityEnd);
  const rest = authorityEnd < 0 ? '' : afterScheme.slice(authorityEnd);
  const at = authority.lastIndexOf('@');
  const userinfo = at < 0 ? undefined : authority.slice(0, at);
  const hasHost = checkHosts(authority.slice(at + 1), rest);
  const edgeAuthority = `${rewrite.edge.urlHost}:${rewrite.edge.port}`;

  if (known.dialect === 'postgres') {
    const query = rewritePostgresQuery(rest, rewrite);
    if (!hasHost && !query.hasHostParameter) throw missingHost(rest, rewrite.cacheType);
    const credentials = userinfo === undefined ? '' : `${userinfo}@`;
    return `${head}${credentials}${edgeAuthority}${query.rest}`;
  }

  const user = userinfo?.split(':', 1)[0] ?? '';
  const prefix = user === '' ? '' : `${rewrite.cacheId}-`;
  const credentials = userinfo === undefined ? '' : `${prefix}${userinfo}@`;

  if (known.dialect === 'mysql') {
    if (!hasHost) throw missingHost(rest, rewrite.cacheType);
    if (MYSQL_SOCKET_PARAMETER.test(rest)) {
      throw invalid(
        'The connection string sets a Unix socket (socketPath); the driver would use it instead of the edge. Remove it.',
      );
    }
    if (user === '')
      throw missingUser(rest, 'put it before the host: mysql://USER:PASSWORD@HOST/DB');
    return `${head}${credentials}${edgeAuthority}${rest}`;
  }

  if (!rest.startsWith(';')) {
    if (!hasHost) throw missingHost(rest, rewrite.cacheType);
    if (user === '') {
      throw missingUser(rest, 'put it before the host: sqlserver://USER:PASSWORD@HOST:1433');
    }
    return `${head}${credentials}${edgeAuthority}${rest}`;
  }
  const settings = parseSettings(rest);
  if (!hasHost && !settings.some((s) => SERVER_KEYS.has(s.key) && s.inner.trim() !== '')) {
    throw missingHost('', rewrite.cacheType);
  }
  if (user === '' && !hasUser(settings)) {
    throw missingUser('', 'add one as a property: ;user=USER');
  }
  return `${head}${credentials}${edgeAuthority}${rewriteSettings(rest, settings, rewrite, false)}`;
}

/**
 * Checks the host list of a URL (`host`, `host:port`, `[v6]:port`, comma-separated for Postgres
 * multi-host, `host\instance` for SQL Server) and says whether it names a host. All of it is
 * replaced by the edge, so an instance name is dropped too: the edge listens on a fixed port.
 */
function checkHosts(hostList: string, rest: string): boolean {
  let named = false;
  for (const item of splitOutsideBrackets(hostList)) {
    let host: string;
    let port: string;
    if (item.startsWith('[')) {
      const close = item.indexOf(']');
      if (close < 0) throw invalid('An IPv6 address in the host is missing its closing "]".');
      host = item.slice(1, close);
      const after = item.slice(close + 1);
      if (after !== '' && !after.startsWith(':')) {
        throw invalid(
          'After an IPv6 address in brackets only ":PORT" may follow, as in [2001:db8::1]:5432.',
        );
      }
      port = after.slice(1);
    } else {
      const parts = item.split(':');
      if (parts.length > 2) {
        throw invalid(
          'An IPv6 address in the host must be written in brackets, as in [2001:db8::1]:5432.',
        );
      }
      host = (parts[0] ?? '').split('\\', 1)[0] ?? '';
      port = parts[1] ?? '';
    }
    if (host === '') continue;
    named = true;
    if (/\s/.test(host))
      throw invalid('The host contains whitespace; remove it.' + encodingHint(rest));
    if (port !== '' && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
      throw invalid(
        'The port after the host is not a number from 1 to 65535.' + encodingHint(rest),
      );
    }
  }
  return named;
}

function splitOutsideBrackets(list: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === '[') depth++;
    else if (c === ']') depth = Math.max(0, depth - 1);
    else if (c === ',' && depth === 0) {
      items.push(list.slice(start, i));
      start = i + 1;
    }
  }
  items.push(list.slice(start));
  return items;
}

/**
 * Puts the cache id in `application_name` (replacing any in place, else appending it) and points
 * libpq's `host`/`port` parameters at the edge; `hostaddr` is dropped because it would bypass the
 * edge by naming the origin's IP address.
 */
function rewritePostgresQuery(
  rest: string,
  rewrite: Rewrite,
): { rest: string; hasHostParameter: boolean } {
  const hash = rest.indexOf('#');
  const beforeFragment = hash < 0 ? rest : rest.slice(0, hash);
  const fragment = hash < 0 ? '' : rest.slice(hash);
  const questionMark = beforeFragment.indexOf('?');
  const path = questionMark < 0 ? beforeFragment : beforeFragment.slice(0, questionMark);
  const query = questionMark < 0 ? '' : beforeFragment.slice(questionMark + 1);
  let hasHostParameter = false;
  let replacedApplicationName = false;
  const parameters: string[] = [];
  for (const parameter of query === '' ? [] : query.split('&')) {
    const equals = parameter.indexOf('=');
    const rawName = equals < 0 ? parameter : parameter.slice(0, equals);
    const name = safeDecode(rawName);
    if (name === 'application_name') {
      parameters.push(`${rawName}=${rewrite.cacheId}`);
      replacedApplicationName = true;
    } else if (name === 'host') {
      hasHostParameter ||= equals >= 0 && equals < parameter.length - 1;
      parameters.push(`${rawName}=${encodeURIComponent(rewrite.edge.bareHost)}`);
    } else if (name === 'port') {
      parameters.push(`${rawName}=${rewrite.edge.port}`);
    } else if (name === 'hostaddr') {
      hasHostParameter ||= equals >= 0 && equals < parameter.length - 1;
    } else {
      parameters.push(parameter);
    }
  }
  if (!replacedApplicationName) {
    if (parameters.length > 0 && parameters.at(-1) === '') parameters.pop();
    parameters.push(`application_name=${rewrite.cacheId}`);
  }
  return { rest: `${path}?${parameters.join('&')}${fragment}`, hasHostParameter };
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** One `key=value` of an ADO.NET string or of sqlserver:// properties, with where its value sits. */
interface Setting {
  /** Lower-cased, spaces removed: `User Id` → `userid`. */
  key: string;
  valueStart: number;
  valueEnd: number;
  quote: '"' | "'" | '{' | undefined;
  /** The value without its quotes. */
  inner: string;
}

/**
 * Splits `key=value;key=value` the way ADO.NET does: keys are case-insensitive, `==` in a key is a
 * literal `=`, values may be quoted with `"` or `'` (doubled to escape) or ODBC braces `{…}` (`}}`
 * escapes), and unquoted values end at the next `;`.
 */
function parseSettings(text: string): Setting[] {
  const settings: Setting[] = [];
  let i = 0;
  let index = 0;
  while (i < text.length) {
    index++;
    let keyEnd = i;
    while (keyEnd < text.length && text[keyEnd] !== ';') {
      if (text[keyEnd] === '=' && text[keyEnd + 1] === '=') keyEnd += 2;
      else if (text[keyEnd] === '=') break;
      else keyEnd++;
    }
    const rawKey = text.slice(i, keyEnd);
    if (keyEnd >= text.length || text[keyEnd] === ';') {
      if (rawKey.trim() !== '') {
        throw invalid(
          `Setting ${index} of the connection string has no "=". Write every setting as KEY=VALUE; ` +
            'if a value contains ";", wrap it in double quotes.',
        );
      }
      i = keyEnd + 1;
      continue;
    }
    const key = rawKey.replaceAll('==', '=').replace(/\s+/g, '').toLowerCase();
    let valueStart = keyEnd + 1;
    while (text[valueStart] === ' ' || text[valueStart] === '\t') valueStart++;
    const opening = text[valueStart];
    if (opening === '"' || opening === "'" || opening === '{') {
      const closing = opening === '{' ? '}' : opening;
      let j = valueStart + 1;
      for (;;) {
        j = text.indexOf(closing, j);
        if (j < 0) {
          throw invalid(
            `The value of "${rawKey.trim()}" opens with ${opening} but never closes it; add the closing ${closing}.`,
          );
        }
        if (text[j + 1] !== closing) break;
        j += 2;
      }
      const valueEnd = j + 1;
      const inner = text.slice(valueStart + 1, j).replaceAll(closing + closing, closing);
      settings.push({ key, valueStart, valueEnd, quote: opening, inner });
      let next = valueEnd;
      while (text[next] === ' ' || text[next] === '\t') next++;
      if (next < text.length && text[next] !== ';') {
        throw invalid(
          `The quoted value of "${rawKey.trim()}" is followed by more text; put a ";" after the closing ${closing}.`,
        );
      }
      i = next + 1;
    } else {
      const semicolon = text.indexOf(';', valueStart);
      const end = semicolon < 0 ? text.length : semicolon;
      const valueEnd = valueStart + text.slice(valueStart, end).trimEnd().length;
      settings.push({
        key,
        valueStart,
        valueEnd,
        quote: undefined,
        inner: text.slice(valueStart, valueEnd),
      });
      i = end + 1;
    }
  }
  return settings;
}

function hasUser(settings: Setting[]): boolean {
  return settings.some((s) => USER_KEYS.has(s.key) && s.inner.trim() !== '');
}

/**
 * Points every server and port setting at the edge and prefixes every user with the cache id,
 * leaving the keys as written and every other byte untouched. In ADO.NET strings the server value
 * carries the port (`HOST,PORT`) and keeps a `tcp:` prefix if it had one.
 */
function rewriteSettings(
  text: string,
  settings: Setting[],
  rewrite: Rewrite,
  serverHasPort: boolean,
): string {
  if (settings.some((s) => BYPASS_KEYS.has(s.key) && s.inner.trim() !== '')) {
    throw invalid(
      'The connection string names a Failover Partner; the driver would connect to it directly, around the edge. Remove it.',
    );
  }
  let out = '';
  let copied = 0;
  for (const setting of settings) {
    let replacement: string | undefined;
    if (SERVER_KEYS.has(setting.key)) {
      const protocol = /^\s*tcp:/i.exec(setting.inner)?.[0].trimStart() ?? '';
      const port = serverHasPort ? `,${rewrite.edge.port}` : '';
      replacement = `${protocol}${rewrite.edge.bareHost}${port}`;
    } else if (PORT_KEYS.has(setting.key)) {
      replacement = String(rewrite.edge.port);
    } else if (USER_KEYS.has(setting.key) && setting.inner.trim() !== '') {
      const insertAt = setting.valueStart + (setting.quote ? 1 : 0);
      out += text.slice(copied, insertAt) + `${rewrite.cacheId}-`;
      copied = insertAt;
      continue;
    }
    if (replacement === undefined) continue;
    out += text.slice(copied, setting.valueStart) + replacement;
    copied = setting.valueEnd;
  }
  return out + text.slice(copied);
}

function rewriteAdo(text: string, rewrite: Rewrite): string {
  const looksLikeSettings = text.includes('=');
  if (rewrite.cacheType !== 'mssql') {
    if (looksLikeSettings && text.includes(';') && looksLikeAdo(text)) {
      throw typeMismatch(
        'a SQL Server connection string (ADO.NET style, Server=…;User Id=…)',
        rewrite.cacheType,
      );
    }
    const keywordHint =
      looksLikeSettings && rewrite.cacheType === 'postgres'
        ? ' Keyword/value strings such as "host=… dbname=…" are not accepted; use the URL form.'
        : '';
    throw invalid(
      `The connection string is not a URL. Expected ${EXPECTED_FORM[rewrite.cacheType]}.${keywordHint}`,
    );
  }
  if (!looksLikeSettings) {
    throw invalid(
      `The connection string is neither a URL nor KEY=VALUE settings. Expected ${EXPECTED_FORM.mssql}.`,
    );
  }
  const settings = parseSettings(text);
  const servers = settings.filter((s) => SERVER_KEYS.has(s.key));
  if (!servers.some((s) => s.inner.trim() !== '')) {
    throw new ConnectionStringError(
      'connection_string.missing_host',
      'The connection string names no server. Add one, such as Server=HOST,1433 (Data Source= works too).',
    );
  }
  for (const server of servers) {
    if (/^\s*(np|lpc|admin):/i.test(server.inner)) {
      throw invalid(
        'The server uses a named-pipe, shared-memory or admin protocol; the edge is reached over TCP, so use Server=HOST,PORT or Server=tcp:HOST,PORT.',
      );
    }
  }
  if (!hasUser(settings)) {
    throw missingUser(
      '',
      'add one, such as User Id=USER;Password=PASSWORD (Windows authentication cannot carry a cache id)',
    );
  }
  return rewriteSettings(text, settings, rewrite, true);
}

function looksLikeAdo(text: string): boolean {
  try {
    return parseSettings(text).some((s) => SERVER_KEYS.has(s.key) || USER_KEYS.has(s.key));
  } catch {
    return false;
  }
}

function invalid(message: string): ConnectionStringError {
  return new ConnectionStringError('connection_string.invalid', message);
}

function typeMismatch(what: string, cacheType: CacheType): ConnectionStringError {
  return new ConnectionStringError(
    'connection_string.type_mismatch',
    `This is ${what}, but the cache is a ${CACHE_LABEL[cacheType]} cache. ` +
      `Use the connection string of its ${CACHE_LABEL[cacheType]} origin: ${EXPECTED_FORM[cacheType]}.`,
  );
}

function missingHost(rest: string, cacheType: CacheType): ConnectionStringError {
  const sockets = cacheType === 'mssql' ? '' : ' A Unix socket cannot be reached through the edge.';
  return new ConnectionStringError(
    'connection_string.missing_host',
    `The connection string names no host. Expected ${EXPECTED_FORM[cacheType]}, with the origin's host.` +
      sockets +
      encodingHint(rest),
  );
}

function missingUser(rest: string, fix: string): ConnectionStringError {
  return new ConnectionStringError(
    'connection_string.missing_user',
    `${MISSING_USER}: ${fix}.${encodingHint(rest)}`,
  );
}

// An '@' after the host part usually means the user or password holds a raw '/', '?' or '#'.
function encodingHint(rest: string): string {
  return rest.includes('@')
    ? ' If the user name or password contains "/", "?", "#" or "@", percent-encode it (for example "/" as %2F).'
    : '';
}
