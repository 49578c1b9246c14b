// The integrations pages: a list of OAuth apps, the form that registers one, and an app's page.
import { appScopeSchema, SCOPE_DESCRIPTIONS, type AppScope } from '@edgegate/contract';
import type { OAuthApp } from '../db/schema.ts';
import type { ManagedAppDetails } from '../services/oauth-apps.ts';
import { html, type SafeHtml } from './html.ts';
import { csrfField, errorSummary, field, type FieldErrors, when } from './layout.ts';

/** What the create form holds, as typed, so a refused form comes back unchanged. */
export interface AppFormValues {
  name: string;
  description: string;
  logoUrl: string;
  homepageUrl: string;
  /** One URI per line. */
  redirectUris: string;
  scopes: string[];
  clientType: string;
}

export const EMPTY_APP_FORM: AppFormValues = {
  name: '',
  description: '',
  logoUrl: '',
  homepageUrl: '',
  redirectUris: '',
  scopes: [],
  clientType: 'confidential',
};

const CLIENT_TYPES = [
  { value: 'confidential', label: 'Confidential', hint: 'server-side app with a secret' },
  {
    value: 'public',
    label: 'Public',
    hint: 'desktop, CLI or single-page app; uses PKCE, no secret',
  },
];

function clientTypeLabel(type: string): string {
  return type === 'public' ? 'Public (PKCE, no secret)' : 'Confidential (with a secret)';
}

function textarea(options: {
  name: string;
  label: string;
  value: string;
  error?: string | undefined;
  hint?: string;
  required?: boolean;
}): SafeHtml {
  const { name, label, value, error, hint, required = false } = options;
  const describedBy = [hint ? `${name}-hint` : '', error ? `${name}-error` : '']
    .filter(Boolean)
    .join(' ');
  return html`<div class="field${error ? ' has-error' : ''}">
    <label for="${name}">${label}</label>
    ${hint ? html`<p class="hint" id="${name}-hint">${hint}</p>` : ''}
    ${error ? html`<p class="error" id="${name}-error">${error}</p>` : ''}
    <textarea
      id="${name}"
      name="${name}"
      rows="3"
      ${required ? html` required` : ''}${describedBy ? html` aria-describedby="${describedBy}"` : ''}${error ? html` aria-invalid="true"` : ''}
    >
${value}</textarea>
  </div>`;
}

function scopeChoices(selected: string[], error: string | undefined): SafeHtml {
  return html`<fieldset id="scopes" class="field${error ? ' has-error' : ''}">
    <legend>Scopes the app may ask for</legend>
    ${error ? html`<p class="error">${error}</p>` : ''}
    ${appScopeSchema.options.map(
      (scope) =>
        html`<label>
          <input
            type="checkbox"
            name="scopes"
            value="${scope}"
            ${selected.includes(scope) ? html` checked` : ''}
          />
          <code>${scope}</code> <span class="muted">${SCOPE_DESCRIPTIONS[scope]}</span>
        </label>`,
    )}
  </fieldset>`;
}

function clientTypeChoices(selected: string, error: string | undefined): SafeHtml {
  return html`<fieldset id="clientType" class="field${error ? ' has-error' : ''}">
    <legend>Client type</legend>
    ${error ? html`<p class="error">${error}</p>` : ''}
    ${CLIENT_TYPES.map(
      (type) =>
        html`<label>
          <input
            type="radio"
            name="clientType"
            value="${type.value}"
            ${selected === type.value ? html` checked` : ''}
          />
          ${type.label}: <span class="muted">${type.hint}</span>
        </label>`,
    )}
  </fieldset>`;
}

export function appCreateForm(
  action: string,
  csrf: string,
  values: AppFormValues,
  errors: FieldErrors = {},
): SafeHtml {
  return html`<section class="card" aria-labelledby="create-heading">
    <h2 id="create-heading">Register an app</h2>
    ${errorSummary(undefined, errors)}
    <form method="post" action="${action}" novalidate>
      ${csrfField(csrf)}
      ${field({ name: 'name', label: 'Name', value: values.name, error: errors.name, hint: 'People see it when they authorize the app.' })}
      ${textarea({ name: 'description', label: 'Description', value: values.description, error: errors.description })}
      ${field({ name: 'logoUrl', label: 'Logo URL', type: 'url', value: values.logoUrl, error: errors.logoUrl, required: false, hint: 'An https address of a square image.' })}
      ${field({ name: 'homepageUrl', label: 'Homepage URL', type: 'url', value: values.homepageUrl, error: errors.homepageUrl, required: false, hint: 'https, or http on localhost, 127.0.0.1 or [::1] while you develop.' })}
      ${textarea({ name: 'redirectUris', label: 'Redirect URIs', value: values.redirectUris, error: errors.redirectUris, required: true, hint: 'One per line, matched exactly. https, or http only on 127.0.0.1, [::1] or localhost.' })}
      ${scopeChoices(values.scopes, errors.scopes)}
      ${clientTypeChoices(values.clientType, errors.clientType)}
      <button type="submit">Register app</button>
    </form>
  </section>`;
}

export function appTable(apps: OAuthApp[]): SafeHtml {
  if (apps.length === 0) return html`<p class="muted">No apps yet.</p>`;
  return html`<table>
    <thead>
      <tr>
        <th scope="col">App</th>
        <th scope="col">Client id</th>
        <th scope="col">Type</th>
        <th scope="col">Created</th>
      </tr>
    </thead>
    <tbody>
      ${apps.map(
        (app) =>
          html`<tr>
            <td><a href="/apps/${app.id}">${app.name}</a></td>
            <td><code>${app.client_id}</code></td>
            <td>${app.client_type}</td>
            <td>${when(app.created_at)}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

export function appPage(
  { app, owner, secrets }: ManagedAppDetails,
  csrf: string,
  options: { overlapHours?: string; errors?: FieldErrors } = {},
): SafeHtml {
  const errors = options.errors ?? {};
  const overlapError = errors.overlapHours;
  const csrfInput = csrfField(csrf);
  return html`<nav aria-label="Breadcrumb">
      <p class="muted"><a href="${owner.integrationsPath}">Integrations</a> → ${app.name}</p>
    </nav>
    <h1>${app.name}</h1>
    ${app.logo_url ? html`<img src="${app.logo_url}" alt="" width="64" height="64" />` : ''}
    ${app.description ? html`<p>${app.description}</p>` : ''}
    <table>
      <tbody>
        <tr>
          <th scope="row">Client id</th>
          <td><code data-testid="client-id">${app.client_id}</code></td>
        </tr>
        <tr>
          <th scope="row">Client type</th>
          <td>${clientTypeLabel(app.client_type)}</td>
        </tr>
        <tr>
          <th scope="row">Owner</th>
          <td>${owner.kind === 'workspace' ? html`Workspace ${owner.name}` : owner.name}</td>
        </tr>
        <tr>
          <th scope="row">Homepage</th>
          <td>
            ${app.homepage_url ? html`<a href="${app.homepage_url}">${app.homepage_url}</a>` : '—'}
          </td>
        </tr>
        <tr>
          <th scope="row">Redirect URIs</th>
          <td>
            <ul>
              ${app.redirect_uris.map((uri) => html`<li><code>${uri}</code></li>`)}
            </ul>
          </td>
        </tr>
        <tr>
          <th scope="row">Scopes</th>
          <td>
            <ul>
              ${app.scopes.map(
                (scope) =>
                  html`<li>
                    <code>${scope}</code>
                    <span class="muted">${SCOPE_DESCRIPTIONS[scope as AppScope] ?? ''}</span>
                  </li>`,
              )}
            </ul>
          </td>
        </tr>
        <tr>
          <th scope="row">Created</th>
          <td>${when(app.created_at)}</td>
        </tr>
      </tbody>
    </table>
    ${
      app.client_type === 'confidential'
        ? html`<section aria-labelledby="secrets-heading">
              <h2 id="secrets-heading">Client secrets</h2>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Created</th>
                    <th scope="col">Status</th>
                  </tr>
                </thead>
                <tbody>
                  ${secrets.map(
                    (secret) =>
                      html`<tr>
                        <td>${when(secret.createdAt)}</td>
                        <td>
                          ${secret.expiresAt ? html`valid until ${when(secret.expiresAt)}` : 'current'}
                        </td>
                      </tr>`,
                  )}
                </tbody>
              </table>
            </section>
            <section class="card" aria-labelledby="rotate-heading">
              <h2 id="rotate-heading">Rotate secret</h2>
              <p>
                A new secret replaces the current one. The old one keeps working for the overlap you
                choose, so you can deploy the new one first.
              </p>
              ${errorSummary(undefined, errors)}
              <form method="post" action="/apps/${app.id}/rotate-secret" novalidate>
                ${csrfInput}
                <div class="field${overlapError ? ' has-error' : ''}">
                  <label for="overlapHours">Keep the old secret working for (hours)</label>
                  <p class="hint" id="overlapHours-hint">0 to 720; 0 stops it at once.</p>
                  ${overlapError ? html`<p class="error" id="overlapHours-error">${overlapError}</p>` : ''}
                  <input
                    id="overlapHours"
                    name="overlapHours"
                    type="number"
                    min="0"
                    max="720"
                    value="${options.overlapHours ?? '24'}"
                    aria-describedby="overlapHours-hint${overlapError ? ' overlapHours-error' : ''}"
                  />
                </div>
                <button type="submit">Rotate secret</button>
              </form>
            </section>`
        : ''
    }
    <section class="card" aria-labelledby="delete-heading">
      <h2 id="delete-heading">Delete app</h2>
      <p>
        Deleting <strong>${app.name}</strong> revokes every authorization people gave it: all its
        access and refresh tokens stop working at once. This cannot be undone.
      </p>
      <form method="post" action="/apps/${app.id}/delete">
        ${csrfInput}<button type="submit" class="danger">Delete app</button>
      </form>
    </section>`;
}
