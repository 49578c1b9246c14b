// The cache pages: a workspace's caches with the form that creates one, and one cache's page with
// its settings, rules, connection-string converter and deletion.
import type { Cache } from '@edgegate/contract';
import type { CacheRow, CacheRuleRow } from '../db/schema.ts';
import { html, type SafeHtml } from './html.ts';
import { csrfField, errorSummary, field, type FieldErrors, when } from './layout.ts';

/** A form as typed, its errors per field, and a message for errors that belong to no field. */
export interface FormState<Values> {
  values: Values;
  errors: FieldErrors;
  message?: string | undefined;
}

export interface CacheFormValues {
  name: string;
  type: string;
  hostname: string;
  port: string;
  defaultMode: string;
  defaultTtlSeconds: string;
  /** 'on' | 'off'; '' when the form did not send it (left unchanged). */
  sharedResults: string;
}

export const EMPTY_CACHE_FORM: CacheFormValues = {
  name: '',
  type: 'postgres',
  hostname: '',
  port: '',
  defaultMode: 'auto',
  defaultTtlSeconds: '60',
  sharedResults: 'off',
};

const SHARED_CHOICES: Option[] = [
  { value: 'off', label: 'No: each edge node keeps its own results' },
  { value: 'on', label: 'Yes: edge nodes share results through Redis' },
];

export interface InvalidationFormValues {
  mode: string;
  username: string;
  /** Never echoed back: a refused form asks for it again. */
  password: string;
  database: string;
  publication: string;
}

export interface RuleFormValues {
  kind: string;
  key: string;
  mode: string;
  ttlSeconds: string;
  transactionPolicy: string;
}

export const EMPTY_RULE_FORM: RuleFormValues = {
  kind: 'table',
  key: '',
  mode: 'auto',
  ttlSeconds: '',
  transactionPolicy: 'never',
};

export interface ConverterState {
  /** What was pasted; only echoed back when it needs fixing. */
  connectionString: string;
  result?: string | undefined;
  /** What would stop the result from working as it is (the edge's TLS, say). */
  warnings?: string[] | undefined;
  errors: FieldErrors;
  message?: string | undefined;
}

interface Option {
  value: string;
  label: string;
}

export const CACHE_TYPES: Option[] = [
  { value: 'postgres', label: 'PostgreSQL' },
  { value: 'mysql', label: 'MySQL' },
  { value: 'mariadb', label: 'MariaDB' },
  { value: 'mssql', label: 'Microsoft SQL Server' },
];

const MODES: Option[] = [
  { value: 'auto', label: 'Automatic: cache reads, drop them when writes change the data' },
  { value: 'manual', label: 'Manual: keep results for the time you set' },
  { value: 'off', label: 'Off: never cache, always ask the database' },
];

const RULE_KINDS: Option[] = [
  { value: 'table', label: 'A table: every query that reads it' },
  { value: 'template', label: 'A query shape: the same SQL with any values' },
  { value: 'query', label: 'One exact query, character for character' },
];

const TRANSACTION_POLICIES: Option[] = [
  { value: 'never', label: 'Never serve from the cache inside a transaction' },
  { value: 'untilWrite', label: 'Serve from the cache inside a transaction until it writes' },
];

const INVALIDATION_MODES: Option[] = [
  {
    value: 'edge',
    label: 'Writes through the edge (others are bounded by the time to keep results)',
  },
  {
    value: 'replication',
    label: "Every committed write, from the database's change stream (replication)",
  },
];

const STATUS_TEXT: Record<string, string> = {
  following: 'following the change stream',
  catching_up: 'catching up',
  down: 'down',
};

const FIELD_LABELS: Record<string, string> = {
  name: 'Name',
  type: 'Database type',
  hostname: 'Origin hostname',
  port: 'Origin port',
  defaultMode: 'Default caching',
  defaultTtlSeconds: 'Default time to keep results',
  sharedResults: 'Share results between edge nodes',
  kind: 'Applies to',
  key: 'Table name or SQL',
  mode: 'Caching',
  ttlSeconds: 'Time to keep results',
  transactionPolicy: 'Inside transactions',
  connectionString: 'Connection string',
  username: 'Replication user',
  password: 'Its password',
  database: 'Database to follow',
  publication: 'Publication',
};

function labelOf(options: Option[], value: string): string {
  return options.find((o) => o.value === value)?.label ?? value;
}

/** The summary names each field, since its messages ("is required") read as the end of a sentence. */
function summary(state: { errors: FieldErrors; message?: string | undefined }): SafeHtml {
  const named = Object.fromEntries(
    Object.entries(state.errors).map(([name, m]) => [name, `${FIELD_LABELS[name] ?? name}: ${m}`]),
  );
  return errorSummary(state.message, named);
}

function describedBy(name: string, hint: string | undefined, error: string | undefined) {
  const ids = [hint ? `${name}-hint` : '', error ? `${name}-error` : ''].filter(Boolean).join(' ');
  return html`${ids ? html` aria-describedby="${ids}"` : ''}${error ? html` aria-invalid="true"` : ''}`;
}

function selectField(options: {
  name: string;
  label: string;
  choices: Option[];
  value: string;
  error?: string | undefined;
  hint?: string;
}): SafeHtml {
  const { name, label, choices, value, error, hint } = options;
  return html`<div class="field${error ? ' has-error' : ''}">
    <label for="${name}">${label}</label>
    ${hint ? html`<p class="hint" id="${name}-hint">${hint}</p>` : ''}
    ${error ? html`<p class="error" id="${name}-error">${error}</p>` : ''}
    <select id="${name}" name="${name}" ${describedBy(name, hint, error)}>
      ${choices.map(
        (c) =>
          html`<option value="${c.value}" ${c.value === value ? html` selected` : ''}>
            ${c.label}
          </option>`,
      )}
    </select>
  </div>`;
}

function textareaField(options: {
  name: string;
  label: string;
  value: string;
  error?: string | undefined;
  hint?: string;
}): SafeHtml {
  const { name, label, value, error, hint } = options;
  return html`<div class="field${error ? ' has-error' : ''}">
    <label for="${name}">${label}</label>
    ${hint ? html`<p class="hint" id="${name}-hint">${hint}</p>` : ''}
    ${error ? html`<p class="error" id="${name}-error">${error}</p>` : ''}
    <textarea
      id="${name}"
      name="${name}"
      rows="3"
      required
      spellcheck="false"
      autocomplete="off"
      ${describedBy(name, hint, error)}
    >
${value}</textarea>
  </div>`;
}

function ttlText(seconds: number | null): string {
  if (seconds === null) return '—';
  return `${seconds} s`;
}

function origin(cache: CacheRow): string {
  return `${cache.hostname.includes(':') ? `[${cache.hostname}]` : cache.hostname}:${cache.port}`;
}

/** The fields a cache is created with; its type cannot change afterwards. */
function cacheFields(state: FormState<CacheFormValues>, options: { withType: boolean }) {
  const { values, errors } = state;
  return html`${field({ name: 'name', label: FIELD_LABELS.name!, value: values.name, error: errors.name, hint: 'For you and your team, e.g. “Orders database”.' })}
  ${options.withType ? selectField({ name: 'type', label: FIELD_LABELS.type!, choices: CACHE_TYPES, value: values.type, error: errors.type }) : ''}
  ${field({ name: 'hostname', label: FIELD_LABELS.hostname!, value: values.hostname, error: errors.hostname, autocomplete: 'off', hint: 'Where your database runs today, e.g. db.example.com. It must resolve in DNS. No username or password: your application keeps sending its own.' })}
  ${field({ name: 'port', label: FIELD_LABELS.port!, type: 'number', value: values.port, error: errors.port, hint: 'Usually 5432 for PostgreSQL, 3306 for MySQL and MariaDB, 1433 for SQL Server.' })}
  ${selectField({ name: 'defaultMode', label: FIELD_LABELS.defaultMode!, choices: MODES, value: values.defaultMode, error: errors.defaultMode, hint: 'For queries that no rule matches.' })}
  ${field({ name: 'defaultTtlSeconds', label: `${FIELD_LABELS.defaultTtlSeconds} (seconds)`, type: 'number', value: values.defaultTtlSeconds, error: errors.defaultTtlSeconds, hint: 'From 1 second to 30 days (2592000).' })}
  ${selectField({ name: 'sharedResults', label: FIELD_LABELS.sharedResults!, choices: SHARED_CHOICES, value: values.sharedResults, error: errors.sharedResults, hint: 'With several edge nodes and Redis (REDIS_URL): a node that restarts serves what the others read at once. Writes through any node keep it fresh; it applies when writes are invalidated through the edge.' })}`;
}

export function cacheListPage(options: {
  base: string;
  workspaceName: string;
  caches: CacheRow[];
  nextPage: string | undefined;
  csrf: string;
  form: FormState<CacheFormValues>;
}): SafeHtml {
  const { base, workspaceName, caches, nextPage, csrf, form } = options;
  return html`<nav aria-label="Breadcrumb">
      <p class="muted"><a href="${base}">${workspaceName}</a> → Caches</p>
    </nav>
    <h1>Caches</h1>
    <p>
      A cache sits between your application and its database. Your application connects to Edgegate
      instead; repeated reads are answered from the cache.
    </p>
    ${
      caches.length
        ? html`<table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Database</th>
                <th scope="col">Origin</th>
                <th scope="col">Default caching</th>
              </tr>
            </thead>
            <tbody>
              ${caches.map(
                (cache) =>
                  html`<tr>
                    <td><a href="${base}/caches/${cache.id}">${cache.name}</a></td>
                    <td>${labelOf(CACHE_TYPES, cache.type)}</td>
                    <td><code>${origin(cache)}</code></td>
                    <td>${cache.default_mode}, ${ttlText(cache.default_ttl_seconds)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : html`<p class="muted">No caches yet.</p>`
    }
    ${nextPage ? html`<p><a href="${nextPage}">Next page</a></p>` : ''}
    <section class="card" aria-labelledby="create-heading">
      <h2 id="create-heading">Create a cache</h2>
      ${summary(form)}
      <form method="post" action="${base}/caches" novalidate>
        ${csrfField(csrf)} ${cacheFields(form, { withType: true })}
        <button type="submit">Create cache</button>
      </form>
    </section>`;
}

function ruleMatches(rule: CacheRuleRow): SafeHtml {
  if (rule.kind === 'table') return html`<code>${rule.key}</code>`;
  if (rule.kind === 'query') return html`<code>${rule.sql ?? rule.key}</code>`;
  return html`${rule.sql ? html`<code>${rule.sql}</code><br />` : ''}<span class="muted"
      >fingerprint <code>${rule.key}</code></span
    >`;
}

function rulesSection(options: {
  action: string;
  rules: CacheRuleRow[];
  more: boolean;
  csrf: SafeHtml;
  form: FormState<RuleFormValues>;
}): SafeHtml {
  const { action, rules, more, csrf, form } = options;
  const { values, errors } = form;
  return html`<section aria-labelledby="rules-heading">
    <h2 id="rules-heading">Rules</h2>
    <p>
      Rules change how particular queries are cached. The most specific one wins: an exact query,
      then a query shape, then a table, then the cache's default.
    </p>
    ${
      rules.length
        ? html`<table>
            <thead>
              <tr>
                <th scope="col">Applies to</th>
                <th scope="col">Matches</th>
                <th scope="col">Caching</th>
                <th scope="col">Keep for</th>
                <th scope="col">In transactions</th>
                <th scope="col"><span class="sr">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              ${rules.map(
                (rule) =>
                  html`<tr>
                    <td>${rule.kind}</td>
                    <td>${ruleMatches(rule)}</td>
                    <td>${rule.mode}</td>
                    <td>${ttlText(rule.ttl_seconds)}</td>
                    <td>
                      ${rule.transaction_policy === 'never' ? 'never cached' : 'until a write'}
                    </td>
                    <td>
                      <form method="post" action="${action}/${rule.id}/delete" class="inline">
                        ${csrf}<button type="submit" class="danger">
                          Delete<span class="sr"> the ${rule.kind} rule ${rule.key}</span>
                        </button>
                      </form>
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : html`<p class="muted">No rules: every query follows the cache's default.</p>`
    }
    ${more ? html`<p class="muted">Showing the first ${rules.length} rules; the API lists them all.</p>` : ''}
    <div class="card">
      <h3 id="rule-heading">Add a rule</h3>
      ${summary(form)}
      <form method="post" action="${action}" novalidate aria-labelledby="rule-heading">
        ${csrf}
        ${selectField({ name: 'kind', label: FIELD_LABELS.kind!, choices: RULE_KINDS, value: values.kind, error: errors.kind })}
        ${textareaField({ name: 'key', label: FIELD_LABELS.key!, value: values.key, error: errors.key, hint: 'For a table, its name (orders or public.orders). For a query shape or an exact query, paste the SQL your application sends.' })}
        ${selectField({ name: 'mode', label: FIELD_LABELS.mode!, choices: MODES, value: values.mode, error: errors.mode })}
        ${field({ name: 'ttlSeconds', label: `${FIELD_LABELS.ttlSeconds} (seconds)`, type: 'number', value: values.ttlSeconds, error: errors.ttlSeconds, required: false, hint: 'Needed for manual caching; leave empty otherwise.' })}
        ${selectField({ name: 'transactionPolicy', label: FIELD_LABELS.transactionPolicy!, choices: TRANSACTION_POLICIES, value: values.transactionPolicy, error: errors.transactionPolicy })}
        <button type="submit">Add rule</button>
      </form>
    </div>
  </section>`;
}

function converterSection(action: string, csrf: SafeHtml, state: ConverterState): SafeHtml {
  const error = state.errors.connectionString;
  return html`<section class="card" aria-labelledby="convert-heading">
    <h2 id="convert-heading">Connect your application</h2>
    <p>
      Paste the connection string your application uses today to get the one that goes through this
      cache. It is converted on the spot and never stored.
    </p>
    ${errorSummary(state.message)}
    <form method="post" action="${action}" novalidate>
      ${csrf}
      <div class="field${error ? ' has-error' : ''}">
        <label for="connectionString">Your database's connection string</label>
        <p class="hint" id="connectionString-hint">
          e.g. postgres://user:password@db.example.com:5432/app
        </p>
        ${error ? html`<p class="error" id="connectionString-error">${error}</p>` : ''}
        <input
          id="connectionString"
          name="connectionString"
          type="text"
          autocomplete="off"
          spellcheck="false"
          required
          value="${state.result ? '' : state.connectionString}"
          ${describedBy('connectionString', 'hint', error)}
        />
      </div>
      <button type="submit">Convert</button>
    </form>
    ${
      state.result
        ? html`<div role="status">
            <h3>Your connection string through Edgegate</h3>
            <code class="secret" data-testid="edge-connection-string">${state.result}</code>
            <p class="hint">
              It holds your password like the original: keep it as safe. Nothing else changes in
              your application.
            </p>
            ${(state.warnings ?? []).map(
              (warning) => html`<p class="error" data-testid="converter-warning">${warning}</p>`,
            )}
          </div>`
        : ''
    }
  </section>`;
}

/** What the invalidation form starts with: the cache's mode and credential as stored. */
export function invalidationFormOf(cache: CacheRow): InvalidationFormValues {
  return {
    mode: cache.invalidation_mode,
    username: cache.replication_username ?? '',
    password: '',
    database: cache.replication_database ?? '',
    publication: cache.replication_publication ?? '',
  };
}

function invalidationSection(options: {
  action: string;
  cache: CacheRow;
  shown: Cache['invalidation'];
  csrf: SafeHtml;
  form: FormState<InvalidationFormValues>;
}): SafeHtml {
  const { action, cache, shown, csrf, form } = options;
  const { values, errors } = form;
  const postgres = cache.type === 'postgres';
  return html`<section class="card" aria-labelledby="invalidation-heading">
    <h2 id="invalidation-heading">Writes that bypass the edge</h2>
    <p data-testid="invalidation-status">
      ${
        shown.mode === 'edge'
          ? 'Cached reads are dropped by writes through the edge; other writes are bounded by the time to keep results.'
          : `Following the database's change stream: ${STATUS_TEXT[shown.status ?? 'down'] ?? shown.status}${shown.reason ? ` (${shown.reason})` : ''}${shown.lagSeconds === null ? '' : `, ${shown.lagSeconds.toFixed(1)} s behind`}${shown.lagBytes === null || shown.lagBytes === undefined ? '' : ` (${formatBytes(shown.lagBytes)} of log)`}${shown.slotBytes === null || shown.slotBytes === undefined ? '' : `; its slot keeps ${formatBytes(shown.slotBytes)} of WAL on the database`}.`
      }
    </p>
    ${summary(form)}
    <form method="post" action="${action}" novalidate>
      ${csrf}
      ${selectField({ name: 'mode', label: 'Drop cached reads on', choices: INVALIDATION_MODES, value: values.mode, error: errors.mode })}
      ${field({ name: 'username', label: FIELD_LABELS.username!, value: values.username, error: errors.username, autocomplete: 'off', required: false, hint: postgres ? 'For replication: a user with the REPLICATION privilege.' : 'For replication: a user with REPLICATION SLAVE and REPLICATION CLIENT on *.*.' })}
      ${field({ name: 'password', label: FIELD_LABELS.password!, type: 'password', error: errors.password, autocomplete: 'new-password', required: false, hint: 'Stored encrypted and never shown again.' })}
      ${
        postgres
          ? html`${field({ name: 'database', label: FIELD_LABELS.database!, value: values.database, error: errors.database, autocomplete: 'off', required: false, hint: 'Default: postgres.' })}
            ${field({ name: 'publication', label: FIELD_LABELS.publication!, value: values.publication, error: errors.publication, autocomplete: 'off', required: false, hint: 'An existing publication; leave empty to have one made FOR ALL TABLES (needs a superuser).' })}`
          : ''
      }
      <button type="submit">Save</button>
    </form>
  </section>`;
}

export function cachePage(options: {
  base: string;
  workspaceName: string;
  cache: CacheRow;
  rules: CacheRuleRow[];
  moreRules: boolean;
  csrf: string;
  edit: FormState<CacheFormValues>;
  rule: FormState<RuleFormValues>;
  converter: ConverterState;
  metrics: SafeHtml;
  invalidation: { shown: Cache['invalidation']; form: FormState<InvalidationFormValues> };
}): SafeHtml {
  const { base, workspaceName, cache, csrf: token } = options;
  const csrf = csrfField(token);
  const self = `${base}/caches/${cache.id}`;
  return html`<nav aria-label="Breadcrumb">
      <p class="muted">
        <a href="${base}">${workspaceName}</a> → <a href="${base}/caches">Caches</a> → ${cache.name}
      </p>
    </nav>
    <h1>${cache.name}</h1>
    <table>
      <tbody>
        <tr>
          <th scope="row">Cache id</th>
          <td><code data-testid="cache-id">${cache.id}</code></td>
        </tr>
        <tr>
          <th scope="row">Database</th>
          <td>${labelOf(CACHE_TYPES, cache.type)}</td>
        </tr>
        <tr>
          <th scope="row">Origin</th>
          <td><code>${origin(cache)}</code></td>
        </tr>
        <tr>
          <th scope="row">Default caching</th>
          <td>${labelOf(MODES, cache.default_mode)}</td>
        </tr>
        <tr>
          <th scope="row">Default time to keep results</th>
          <td>${ttlText(cache.default_ttl_seconds)}</td>
        </tr>
        <tr>
          <th scope="row">Created</th>
          <td>${when(cache.created_at)}</td>
        </tr>
        ${
          cache.created_by_app_id === null
            ? ''
            : html`<tr>
                <th scope="row">Created by</th>
                <td data-testid="created-by">
                  the app <strong>${cache.created_by_app_name ?? ''}</strong> (it stays if the app
                  is revoked)
                </td>
              </tr>`
        }
      </tbody>
    </table>
    ${options.metrics} ${converterSection(`${self}/connection-string`, csrf, options.converter)}
    ${rulesSection({ action: `${self}/rules`, rules: options.rules, more: options.moreRules, csrf, form: options.rule })}
    <section class="card" aria-labelledby="edit-heading">
      <h2 id="edit-heading">Settings</h2>
      ${summary(options.edit)}
      <form method="post" action="${self}" novalidate>
        ${csrf}
        <input type="hidden" name="version" value="${cache.version}" />
        ${cacheFields(options.edit, { withType: false })}
        <button type="submit">Save settings</button>
      </form>
    </section>
    ${invalidationSection({ action: `${self}/invalidation`, cache, shown: options.invalidation.shown, csrf, form: options.invalidation.form })}
    <section class="card" aria-labelledby="delete-heading">
      <h2 id="delete-heading">Delete cache</h2>
      <p>
        Deleting <strong>${cache.name}</strong> removes its rules, and applications connecting
        through it stop working. Your database and its data are not touched. This cannot be undone.
      </p>
      <form method="post" action="${self}/delete">
        ${csrf}<button type="submit" class="danger">Delete cache</button>
      </form>
    </section>`;
}

/** What the edit form starts with: the cache as stored. */
export function cacheFormOf(cache: CacheRow): CacheFormValues {
  return {
    name: cache.name,
    type: cache.type,
    hostname: cache.hostname,
    port: String(cache.port),
    defaultMode: cache.default_mode,
    defaultTtlSeconds: String(cache.default_ttl_seconds),
    sharedResults: cache.shared_results ? 'on' : 'off',
  };
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}
