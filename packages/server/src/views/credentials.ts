// The credentials page of a workspace: the member's API keys, and for admins the workspace's service
// tokens with an editor of their accesses (a permission, on every cache or on one).
import { API_SCOPES, SCOPE_DESCRIPTIONS, type ApiScope } from '@edgegate/contract';
import type { CacheRow } from '../db/schema.ts';
import type { ApiKeyRow } from '../db/queries/api-keys.ts';
import type { ServiceTokenAccess, ServiceTokenRow } from '../db/queries/service-tokens.ts';
import { html, type SafeHtml } from './html.ts';
import { csrfField, errorSummary, field, type FieldErrors, when } from './layout.ts';

export interface ApiKeyFormValues {
  keyName: string;
  keyExpiresOn: string;
}

export const EMPTY_API_KEY_FORM: ApiKeyFormValues = { keyName: '', keyExpiresOn: '' };

/** One row of the accesses editor; an empty scope means an unused row. */
export interface AccessRow {
  scope: string;
  cacheId: string;
}

export interface ServiceTokenFormValues {
  tokenName: string;
  tokenExpiresOn: string;
  accesses: AccessRow[];
}

/** Rows the editor offers; a token needing more accesses can be made through the API. */
export const ACCESS_ROWS = 5;

export const EMPTY_SERVICE_TOKEN_FORM: ServiceTokenFormValues = {
  tokenName: '',
  tokenExpiresOn: '',
  accesses: [],
};

export interface CredentialsForm<Values> {
  values: Values;
  errors: FieldErrors;
  message?: string | undefined;
}

const FIELD_LABELS: Record<string, string> = {
  keyName: 'Name',
  keyExpiresOn: 'Expires on',
  tokenName: 'Name',
  tokenExpiresOn: 'Expires on',
  accesses: 'Permissions',
};

function summary(form: { errors: FieldErrors; message?: string | undefined }): SafeHtml {
  const named = Object.fromEntries(
    Object.entries(form.errors).map(([name, m]) => [name, `${FIELD_LABELS[name] ?? name}: ${m}`]),
  );
  return errorSummary(form.message, named);
}

function optionalDate(date: Date | null, none: string): SafeHtml | string {
  return date ? when(date) : none;
}

function scopeText(scope: string): SafeHtml {
  return html`<code>${scope}</code>
    <span class="muted">${SCOPE_DESCRIPTIONS[scope as ApiScope] ?? ''}</span>`;
}

function apiKeyReach(key: ApiKeyRow, cacheNames: ReadonlyMap<string, string>): SafeHtml {
  const everything = API_SCOPES.every((scope) => key.scopes.includes(scope));
  return html`${
    everything
      ? 'Everything you can do here'
      : html`<ul>
          ${key.scopes.map((s) => html`<li>${scopeText(s)}</li>`)}
        </ul>`
  }
  ${key.cache_ids ? html`<p class="muted">Only on ${key.cache_ids.map((id) => cacheNames.get(id) ?? id).join(', ')}</p>` : ''}`;
}

function apiKeysSection(options: {
  action: string;
  keys: ApiKeyRow[];
  cacheNames: ReadonlyMap<string, string>;
  csrf: SafeHtml;
  form: CredentialsForm<ApiKeyFormValues>;
}): SafeHtml {
  const { action, keys, cacheNames, csrf, form } = options;
  return html`<section aria-labelledby="apikeys-heading">
    <h2 id="apikeys-heading">Your API keys</h2>
    <p>
      An API key lets your scripts and tools use the Edgegate API as you, in this workspace only.
      Send it as <code>Authorization: Bearer egk_…</code>. Delete a key as soon as you no longer
      need it: it stops working at once.
    </p>
    ${
      keys.length
        ? html`<table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Key starts with</th>
                <th scope="col">Can</th>
                <th scope="col">Expires</th>
                <th scope="col">Last used</th>
                <th scope="col">Created</th>
                <th scope="col"><span class="sr">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              ${keys.map(
                (key) =>
                  html`<tr>
                    <td>${key.name}</td>
                    <td><code>${key.prefix}…</code></td>
                    <td>${apiKeyReach(key, cacheNames)}</td>
                    <td>${optionalDate(key.expires_at, 'never')}</td>
                    <td>${optionalDate(key.last_used_at, 'never')}</td>
                    <td>${when(key.created_at)}</td>
                    <td>
                      <form method="post" action="${action}/${key.id}/delete" class="inline">
                        ${csrf}<button type="submit" class="danger">
                          Delete<span class="sr"> the API key ${key.name}</span>
                        </button>
                      </form>
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : html`<p class="muted">You have no API keys in this workspace.</p>`
    }
    <div class="card">
      <h3 id="apikey-create-heading">Create an API key</h3>
      <p>It can do everything you can do in this workspace.</p>
      ${summary(form)}
      <form method="post" action="${action}" novalidate aria-labelledby="apikey-create-heading">
        ${csrf}
        ${field({ name: 'keyName', label: FIELD_LABELS.keyName!, value: form.values.keyName, error: form.errors.keyName, hint: 'Where you will use it, e.g. “deploy script”.' })}
        ${field({ name: 'keyExpiresOn', label: `${FIELD_LABELS.keyExpiresOn} (optional)`, type: 'date', value: form.values.keyExpiresOn, error: form.errors.keyExpiresOn, required: false, hint: 'It stops working at the start of that day (UTC). Leave empty for a key that does not expire.' })}
        <button type="submit">Create API key</button>
      </form>
    </div>
  </section>`;
}

function accessText(access: ServiceTokenAccess, cacheNames: ReadonlyMap<string, string>) {
  return html`${scopeText(access.scope)} ·
  ${access.cacheId ? html`only <em>${cacheNames.get(access.cacheId) ?? access.cacheId}</em>` : 'all caches'}`;
}

function accessesEditor(
  rows: AccessRow[],
  caches: CacheRow[],
  error: string | undefined,
): SafeHtml {
  const padded = [
    ...rows,
    ...Array.from({ length: Math.max(ACCESS_ROWS - rows.length, 0) }, () => ({
      scope: '',
      cacheId: '',
    })),
  ];
  return html`<fieldset id="accesses" class="field${error ? ' has-error' : ''}">
    <legend>Permissions</legend>
    <p class="hint">
      Choose what the token may do, and where: on every cache of the workspace, or only on one.
      Leave unneeded rows empty.
    </p>
    ${error ? html`<p class="error">${error}</p>` : ''}
    <table>
      <thead>
        <tr>
          <th scope="col">#</th>
          <th scope="col">May</th>
          <th scope="col">On</th>
        </tr>
      </thead>
      <tbody>
        ${padded.map(
          (row, i) =>
            html`<tr>
              <th scope="row">${i + 1}</th>
              <td>
                <label class="sr" for="scope-${i}">Permission ${i + 1}</label>
                <select id="scope-${i}" name="scope">
                  <option value="">—</option>
                  ${API_SCOPES.map(
                    (scope) =>
                      html`<option value="${scope}" ${row.scope === scope ? html` selected` : ''}>
                        ${scope}: ${SCOPE_DESCRIPTIONS[scope]}
                      </option>`,
                  )}
                </select>
              </td>
              <td>
                <label class="sr" for="cacheId-${i}">Where permission ${i + 1} applies</label>
                <select id="cacheId-${i}" name="cacheId">
                  <option value="">All caches</option>
                  ${caches.map(
                    (cache) =>
                      html`<option
                        value="${cache.id}"
                        ${row.cacheId === cache.id ? html` selected` : ''}
                      >
                        ${cache.name}
                      </option>`,
                  )}
                </select>
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
  </fieldset>`;
}

function serviceTokensSection(options: {
  action: string;
  tokens: ServiceTokenRow[];
  accesses: ReadonlyMap<string, ServiceTokenAccess[]>;
  caches: CacheRow[];
  cacheNames: ReadonlyMap<string, string>;
  csrf: SafeHtml;
  form: CredentialsForm<ServiceTokenFormValues>;
}): SafeHtml {
  const { action, tokens, accesses, caches, cacheNames, csrf, form } = options;
  return html`<section aria-labelledby="tokens-heading">
    <h2 id="tokens-heading">Service tokens</h2>
    <p>
      A service token belongs to the workspace, not to a person, so it keeps working when people
      leave. Give it only the permissions it needs. Send it as
      <code>Authorization: &lt;token id&gt;:&lt;token&gt;</code>.
    </p>
    ${
      tokens.length
        ? html`<table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Token id</th>
                <th scope="col">May</th>
                <th scope="col">Expires</th>
                <th scope="col">Last used</th>
                <th scope="col">Created</th>
                <th scope="col"><span class="sr">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              ${tokens.map(
                (token) =>
                  html`<tr>
                    <td>${token.name}</td>
                    <td><code>${token.id}</code></td>
                    <td>
                      <ul>
                        ${(accesses.get(token.id) ?? []).map((a) => html`<li>${accessText(a, cacheNames)}</li>`)}
                      </ul>
                    </td>
                    <td>${optionalDate(token.expires_at, 'never')}</td>
                    <td>${optionalDate(token.last_used_at, 'never')}</td>
                    <td>${when(token.created_at)}</td>
                    <td>
                      <form method="post" action="${action}/${token.id}/delete" class="inline">
                        ${csrf}<button type="submit" class="danger">
                          Delete<span class="sr"> the service token ${token.name}</span>
                        </button>
                      </form>
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : html`<p class="muted">This workspace has no service tokens.</p>`
    }
    <div class="card">
      <h3 id="token-create-heading">Create a service token</h3>
      ${summary(form)}
      <form method="post" action="${action}" novalidate aria-labelledby="token-create-heading">
        ${csrf}
        ${field({ name: 'tokenName', label: FIELD_LABELS.tokenName!, value: form.values.tokenName, error: form.errors.tokenName, hint: 'What uses it, e.g. “CI pipeline”.' })}
        ${field({ name: 'tokenExpiresOn', label: `${FIELD_LABELS.tokenExpiresOn} (optional)`, type: 'date', value: form.values.tokenExpiresOn, error: form.errors.tokenExpiresOn, required: false, hint: 'It stops working at the start of that day (UTC). Leave empty for a token that does not expire.' })}
        ${accessesEditor(form.values.accesses, caches, form.errors.accesses)}
        <button type="submit">Create service token</button>
      </form>
    </div>
  </section>`;
}

export function credentialsPage(options: {
  base: string;
  workspaceName: string;
  isAdmin: boolean;
  keys: ApiKeyRow[];
  tokens: ServiceTokenRow[];
  accesses: ReadonlyMap<string, ServiceTokenAccess[]>;
  caches: CacheRow[];
  csrf: string;
  apiKeyForm: CredentialsForm<ApiKeyFormValues>;
  serviceTokenForm: CredentialsForm<ServiceTokenFormValues>;
}): SafeHtml {
  const { base, workspaceName, isAdmin } = options;
  const csrf = csrfField(options.csrf);
  const path = `${base}/settings/credentials`;
  const cacheNames = new Map(options.caches.map((cache) => [cache.id, cache.name]));
  return html`<nav aria-label="Breadcrumb">
      <p class="muted"><a href="${base}">${workspaceName}</a> → API keys &amp; service tokens</p>
    </nav>
    <h1>API keys &amp; service tokens</h1>
    <p>
      Each secret is shown once, when it is created. Edgegate keeps only a fingerprint of it, so a
      lost secret cannot be shown again: delete it and create a new one.
    </p>
    ${apiKeysSection({ action: `${path}/apikeys`, keys: options.keys, cacheNames, csrf, form: options.apiKeyForm })}
    ${
      isAdmin
        ? serviceTokensSection({
            action: `${path}/service-tokens`,
            tokens: options.tokens,
            accesses: options.accesses,
            caches: options.caches,
            cacheNames,
            csrf,
            form: options.serviceTokenForm,
          })
        : html`<section aria-labelledby="tokens-heading">
            <h2 id="tokens-heading">Service tokens</h2>
            <p>
              Service tokens belong to the workspace. Only its admins can see and create them; ask
              one if you need a credential that does not depend on you.
            </p>
          </section>`
    }`;
}
