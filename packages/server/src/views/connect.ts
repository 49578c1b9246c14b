// The hosted connect pages: type picker, the form generated from a type's JSON Schema, the result
// hand-off and the error page. Plain HTML forms: they work without JavaScript, in a popup, an
// iframe or a whole window, in light and dark.
import { html, SafeHtml } from './html.ts';
import { errorSummary, type FieldErrors } from './layout.ts';

export interface Partner {
  name: string;
  logoUrl: string | null;
}

export type Theme = 'auto' | 'light' | 'dark';

interface JsonProperty {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  examples?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  anyOf?: JsonProperty[];
  'x-edgegate'?: {
    order?: number;
    placeholder?: string;
    secret?: boolean;
    widget?: string;
  };
}

export interface FormSchema {
  properties?: Record<string, JsonProperty>;
  required?: string[];
}

export const CONNECT_CSS = `
.connect { max-width: 34rem; margin: 0 auto; }
.partner { display: flex; align-items: center; gap: .75rem; margin-bottom: 1rem; }
.partner img { width: 40px; height: 40px; border-radius: 8px; object-fit: contain; background: var(--card); }
.partner p { margin: 0; color: var(--muted); }
.types { list-style: none; padding: 0; display: grid; gap: .5rem; }
.types a { display: block; padding: .75rem 1rem; border: 1px solid var(--line); border-radius: 8px; text-decoration: none; color: var(--fg); background: var(--card); }
.types a:hover, .types a:focus { border-color: var(--accent); }
.types small { display: block; color: var(--muted); }
.actions { display: flex; gap: .75rem; align-items: center; margin-top: 1rem; }
.connect select, .connect input[type=number] { font: inherit; padding: .45rem .5rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); }
.checkbox { display: flex; gap: .5rem; align-items: center; margin: .75rem 0; }
.test-error { border-left: 4px solid var(--danger); padding: .5rem .75rem; background: var(--card); }
.busy[hidden] { display: none; }
html[data-theme=light] { color-scheme: light; --fg:#1b1f24; --muted:#59636e; --bg:#fff; --card:#f6f8fa; --line:#d1d9e0; --accent:#0b5fff; --danger:#c62828; --ok:#1a7f37; }
html[data-theme=dark] { color-scheme: dark; --fg:#e6edf3; --muted:#9198a1; --bg:#0d1117; --card:#151b23; --line:#3d444d; --accent:#4493f8; --danger:#f85149; --ok:#3fb950; }
`;

function frame(options: {
  title: string;
  theme: Theme;
  partner: Partner | null;
  body: SafeHtml;
  nonce?: string;
  script?: string;
}): string {
  const { title, theme, partner, body, nonce, script } = options;
  return html`<!doctype html>
    <html lang="en" data-theme="${theme}">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="${theme === 'auto' ? 'light dark' : theme}" />
        <meta name="referrer" content="same-origin" />
        <title>${title} · Edgegate</title>
        <link rel="stylesheet" href="/assets/console.css" />
        <link rel="stylesheet" href="/assets/connect.css" />
      </head>
      <body>
        <main id="main" class="connect">
          ${
            partner
              ? html`<div class="partner">
                  ${partner.logoUrl ? html`<img src="${partner.logoUrl}" alt="" />` : ''}
                  <div>
                    <strong>${partner.name}</strong>
                    <p>connects a database through Edgegate</p>
                  </div>
                </div>`
              : ''
          }
          ${body}
        </main>
        ${
          script && nonce
            ? html`<script nonce="${nonce}">
                ${new SafeHtml(script)};
              </script>`
            : ''
        }
      </body>
    </html>`.value;
}

// Every message to the opener names the connect session (the path segment after /connect/), so
// connect.js can tell it is its popup's even when the browser delivers it without a source.
const SESSION_SCRIPT = `function edgegateSession() {
      return window.location.pathname.split('/')[2] || '';
    }`;

/**
 * Script that tells the opener (popup) or parent (iframe) of a step, for connect.js's `onEvent`:
 * `{type: "edgegate:connect:event", event, metadata}`, addressed to the partner's origin only.
 */
function stepScript(targetOrigin: string): string {
  return `${SESSION_SCRIPT}
    function edgegateStep(event, metadata) {
      var target = window.opener || (window.parent !== window ? window.parent : null);
      if (!target) return;
      var message = { type: 'edgegate:connect:event', event: event, metadata: metadata || {}, connect: edgegateSession() };
      try { target.postMessage(message, ${JSON.stringify(targetOrigin).replace(/</g, '\\u003c')}); } catch (e) {}
    }`;
}

export function errorPage(options: {
  status: number;
  title: string;
  message: string;
  theme?: Theme;
  partner?: Partner | null;
}): string {
  return frame({
    title: options.title,
    theme: options.theme ?? 'auto',
    partner: options.partner ?? null,
    body: html`<h1>${options.title}</h1>
      <p role="alert">${options.message}</p>
      <p class="hint">Go back to the app that sent you here and start again.</p>`,
  });
}

export function typePickerPage(options: {
  sessionName: string;
  theme: Theme;
  partner: Partner | null;
  types: { id: string; title: string; description: string }[];
  hrefFor: (type: string) => string;
  targetOrigin: string;
  nonce: string;
}): string {
  return frame({
    title: 'Choose a database',
    theme: options.theme,
    partner: options.partner,
    nonce: options.nonce,
    script: `${stepScript(options.targetOrigin)}
    Array.prototype.forEach.call(document.querySelectorAll('a[data-type]'), function (a) {
      a.addEventListener('click', function () { edgegateStep('SELECT_TYPE', { type: a.getAttribute('data-type') }); });
    });`,
    body: html`<h1>Connect a database</h1>
      <p>What kind of database is “${options.sessionName}”?</p>
      <ul class="types" aria-label="Database types">
        ${options.types.map(
          (t) =>
            html`<li>
              <a href="${options.hrefFor(t.id)}" data-type="${t.id}"
                >${t.title}<small>${t.description}</small></a
              >
            </li>`,
        )}
      </ul>`,
  });
}

function fieldOrder(schema: FormSchema): [string, JsonProperty][] {
  return Object.entries(schema.properties ?? {}).sort(
    ([, a], [, b]) => (a['x-edgegate']?.order ?? 999) - (b['x-edgegate']?.order ?? 999),
  );
}

function primitive(p: JsonProperty): string {
  if (p.anyOf) return p.anyOf.map(primitive).find((t) => t !== 'null') ?? 'string';
  return (Array.isArray(p.type) ? p.type.find((t) => t !== 'null') : p.type) ?? 'string';
}

/** One form control per schema property: its type, limits and hints come from the schema. */
function control(
  name: string,
  p: JsonProperty,
  required: boolean,
  value: string | undefined,
  error: string | undefined,
): SafeHtml {
  const id = `field-${name}`;
  const hints = p['x-edgegate'] ?? {};
  const label = p.title ?? name;
  const kind = primitive(p);
  const hint = p.description;
  const describedBy = [hint ? `${id}-hint` : '', error ? `${id}-error` : '']
    .filter(Boolean)
    .join(' ');
  const aria = html`${describedBy ? html` aria-describedby="${describedBy}"` : ''}${error ? html` aria-invalid="true"` : ''}`;
  const shown = value ?? (p.default !== undefined ? String(p.default) : undefined);
  const header = html`${hint ? html`<p class="hint" id="${id}-hint">${hint}</p>` : ''}
  ${error ? html`<p class="error" id="${id}-error">${error}</p>` : ''}`;
  if (kind === 'boolean') {
    const checked = value !== undefined ? value === 'true' : p.default === true;
    return html`<div class="field checkbox${error ? ' has-error' : ''}">
      <input type="hidden" name="${`f.${name}`}" value="false" />
      <input
        id="${id}"
        type="checkbox"
        name="${`f.${name}`}"
        value="true"
        ${checked ? html` checked` : ''}${aria}
      />
      <label for="${id}">${label}</label>
      ${header}
    </div>`;
  }
  if (p.enum) {
    return html`<div class="field${error ? ' has-error' : ''}">
      <label for="${id}">${label}</label>
      ${header}
      <select id="${id}" name="${`f.${name}`}" ${aria}>
        ${p.enum.map(
          (option) =>
            html`<option
              value="${String(option)}"
              ${String(option) === shown ? html` selected` : ''}
            >
              ${String(option)}
            </option>`,
        )}
      </select>
    </div>`;
  }
  const secret = hints.secret === true;
  const numeric = kind === 'integer' || kind === 'number';
  const type = secret ? 'password' : numeric ? 'number' : 'text';
  const placeholder =
    hints.placeholder ?? (p.examples?.[0] !== undefined ? String(p.examples[0]) : undefined);
  return html`<div class="field${error ? ' has-error' : ''}">
    <label for="${id}"
      >${label}${required ? '' : html` <span class="hint">(optional)</span>`}</label
    >
    ${header}
    <input
      id="${id}"
      name="${`f.${name}`}"
      type="${type}"
      ${!secret && shown !== undefined ? html` value="${shown}"` : ''}${placeholder ? html` placeholder="${placeholder}"` : ''}${p.pattern && !numeric ? html` pattern="${p.pattern}"` : ''}${p.minimum !== undefined ? html` min="${p.minimum}"` : ''}${p.maximum !== undefined ? html` max="${p.maximum}"` : ''}${p.maxLength !== undefined ? html` maxlength="${p.maxLength}"` : ''}${required && !secret ? html` required` : ''}${secret ? html` autocomplete="new-password"` : html` autocomplete="off"`}
      spellcheck="false"
      ${aria}
    />
  </div>`;
}

export function formPage(options: {
  sessionName: string;
  theme: Theme;
  partner: Partner | null;
  type: { id: string; title: string; description: string; schema: FormSchema };
  action: string;
  cancelAction: string;
  csrf: string;
  state: string;
  values: Record<string, string>;
  errors: FieldErrors;
  testError?: string | undefined;
  backHref?: string | undefined;
  reconnect: boolean;
  nonce: string;
  targetOrigin: string;
  /** Why the last submission failed (a test failure's code, or `invalid_input`), for onEvent. */
  errorCode?: string | undefined;
}): string {
  const required = new Set(options.type.schema.required ?? []);
  const fields = fieldOrder(options.type.schema);
  const fieldErrors = Object.fromEntries(
    Object.entries(options.errors).map(([k, v]) => [`field-${k}`, v]),
  );
  return frame({
    title: `Connect ${options.type.title}`,
    theme: options.theme,
    partner: options.partner,
    nonce: options.nonce,
    // Progress while Edgegate connects: the button says so and cannot be pressed twice.
    script: `${stepScript(options.targetOrigin)}
    ${options.errorCode ? `edgegateStep('ERROR', ${JSON.stringify({ type: options.type.id, error_code: options.errorCode }).replace(/</g, '\\u003c')});` : ''}
    document.getElementById('connect-form').addEventListener('submit', function (e) {
      var b = document.getElementById('save'); if (b.disabled) { e.preventDefault(); return; }
      b.disabled = true; b.textContent = 'Testing the connection…';
      document.getElementById('busy').hidden = false;
      edgegateStep('SUBMIT', { type: ${JSON.stringify(options.type.id)} }); });`,
    body: html`<h1>${options.reconnect ? 'Update' : 'Connect'} ${options.type.title}</h1>
      <p>${options.type.description}</p>
      ${
        options.testError
          ? html`<div class="test-error" role="alert" data-testid="test-error">
              <p><strong>Edgegate could not connect.</strong> ${options.testError}</p>
            </div>`
          : errorSummary(
              Object.keys(fieldErrors).length ? 'Please correct the following:' : undefined,
              fieldErrors,
            )
      }
      <form id="connect-form" method="post" action="${options.action}" novalidate>
        <input type="hidden" name="_csrf" value="${options.csrf}" />
        <input type="hidden" name="type" value="${options.type.id}" />
        <input type="hidden" name="state" value="${options.state}" />
        ${fields.map(([name, p]) =>
          control(name, p, required.has(name), options.values[name], options.errors[name]),
        )}
        <div class="actions">
          <button type="submit" id="save" class="primary">Test and save</button>
          ${options.backHref ? html`<a href="${options.backHref}">Choose another type</a>` : ''}
        </div>
        <p id="busy" class="hint busy" role="status" hidden>Connecting to your database…</p>
      </form>
      <form method="post" action="${options.cancelAction}" class="inline">
        <input type="hidden" name="_csrf" value="${options.csrf}" />
        <input type="hidden" name="state" value="${options.state}" />
        <button type="submit" class="link" id="cancel">Cancel</button>
      </form>
      <p class="hint">
        Your password goes only to Edgegate, which tests it and stores it encrypted; the app that
        sent you here never sees it.
      </p>`,
  });
}

// How long a popup or frame that posted its result waits before it goes on to the redirect URL.
export const HAND_OVER_DELAY_MS = 1500;

/**
 * The hand-off: tell the opener (popup) or parent (iframe) the result, addressed to the partner's
 * origin only, then continue to the partner's redirect URL. Without JavaScript the link does it.
 */
export function resultPage(options: {
  theme: Theme;
  partner: Partner | null;
  nonce: string;
  targetOrigin: string;
  message: Record<string, string>;
  redirectTo: string;
  success: boolean;
  /** Shown before handing over: the page then waits for the user to press Continue. */
  warning?: string | undefined;
}): string {
  // `</script` inside a JSON string would end the element early: every `<` is escaped.
  const payload = JSON.stringify({
    message: options.message,
    origin: options.targetOrigin,
    to: options.redirectTo,
  }).replace(/</g, '\\u003c');
  return frame({
    title: options.success ? 'Connected' : 'Cancelled',
    theme: options.theme,
    partner: options.partner,
    nonce: options.nonce,
    script: `(function () {
      ${SESSION_SCRIPT}
      var r = ${payload};
      function handOver() {
        var target = window.opener || (window.parent !== window ? window.parent : null);
        if (!target) { window.location.replace(r.to); return; }
        r.message.connect = edgegateSession();
        try { target.postMessage(r.message, r.origin); } catch (e) {}
        // Leaving at once can reach the opener before the message is dispatched, and Chromium then
        // gives it no source (event.source null) to match the popup by: connect.js closes the
        // popup on the message, so only a window still open a moment later goes on.
        setTimeout(function () { window.location.replace(r.to); }, ${HAND_OVER_DELAY_MS});
      }
      ${
        options.warning
          ? `document.getElementById('continue').addEventListener('click', function (e) {
        e.preventDefault(); handOver(); });`
          : 'handOver();'
      }
    })();`,
    body: html`<h1>${options.success ? 'Connected' : 'Cancelled'}</h1>
      ${
        options.warning
          ? html`<div class="test-error" role="alert" data-testid="warning">
              <p><strong>Check this before you continue.</strong> ${options.warning}</p>
            </div>`
          : html`<p role="status">
              ${options.success ? 'Your database is connected.' : 'Nothing was saved.'} Returning
              you to ${options.partner?.name ?? 'the app'}…
            </p>`
      }
      <p><a href="${options.redirectTo}" id="continue">Continue</a></p>`,
  });
}
