// The page frame shared by every console page: header, navigation, flash and main content.
import { html, type SafeHtml } from './html.ts';

export interface PageUser {
  email: string;
  name: string;
}

export interface PageOptions {
  title: string;
  user?: PageUser | undefined;
  csrfToken?: string | undefined;
  flash?: { message: string; secret?: string | undefined } | undefined;
  body: SafeHtml;
}

export function page({ title, user, csrfToken, flash, body }: PageOptions): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <title>${title} · Edgegate</title>
        <link rel="stylesheet" href="/assets/console.css" />
        <link rel="icon" href="/assets/icon.svg" type="image/svg+xml" />
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <a class="brand" href="/">Edgegate</a>
          ${
            user
              ? html`<nav aria-label="Account">
                  <a href="/workspaces">Workspaces</a>
                  <a href="/settings/account/integrations">Integrations</a>
                  <a href="/settings/account/authorized-apps">Authorized apps</a>
                  <span class="who">${user.name || user.email}</span>
                  <form method="post" action="/logout" class="inline">
                    <input type="hidden" name="_csrf" value="${csrfToken}" />
                    <button type="submit" class="link">Log out</button>
                  </form>
                </nav>`
              : html`<nav aria-label="Account">
                  <a href="/login">Log in</a> <a href="/signup">Sign up</a>
                </nav>`
          }
        </header>
        <main id="main">
          ${
            flash
              ? html`<div class="flash" role="status">
                  <p>${flash.message}</p>
                  ${
                    flash.secret
                      ? html`<code class="secret" data-testid="secret">${flash.secret}</code>
                          <p class="hint">Copy it now: it will not be shown again.</p>`
                      : ''
                  }
                </div>`
              : ''
          }
          ${body}
        </main>
      </body>
    </html>`.value;
}

export interface FieldErrors {
  [field: string]: string | undefined;
}

/** A list of the form's errors at its top, announced to screen readers. */
export function errorSummary(message: string | undefined, errors: FieldErrors = {}): SafeHtml {
  const items = Object.entries(errors).filter(([, m]) => m);
  if (!message && items.length === 0) return html``;
  return html`<div class="error-summary" role="alert" tabindex="-1">
    <p>${message ?? 'Please correct the following:'}</p>
    ${
      items.length
        ? html`<ul>
            ${items.map(([field, m]) => html`<li><a href="#${field}">${m}</a></li>`)}
          </ul>`
        : ''
    }
  </div>`;
}

export function field(options: {
  name: string;
  label: string;
  type?: string;
  value?: string | undefined;
  error?: string | undefined;
  autocomplete?: string;
  required?: boolean;
  hint?: string;
}): SafeHtml {
  const { name, label, type = 'text', value, error, autocomplete, required = true, hint } = options;
  const describedBy = [hint ? `${name}-hint` : '', error ? `${name}-error` : '']
    .filter(Boolean)
    .join(' ');
  return html`<div class="field${error ? ' has-error' : ''}">
    <label for="${name}">${label}</label>
    ${hint ? html`<p class="hint" id="${name}-hint">${hint}</p>` : ''}
    ${error ? html`<p class="error" id="${name}-error">${error}</p>` : ''}
    <input
      id="${name}"
      name="${name}"
      type="${type}"
      ${value !== undefined && type !== 'password' ? html` value="${value}"` : ''}${autocomplete ? html` autocomplete="${autocomplete}"` : ''}${required ? html` required` : ''}${describedBy ? html` aria-describedby="${describedBy}"` : ''}${error ? html` aria-invalid="true"` : ''}
    />
  </div>`;
}

/** A date as people read it, in UTC so every viewer sees the same text. */
export function formatUtc(date: Date): string {
  return date.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
}

export function when(date: Date): SafeHtml {
  return html`<time datetime="${date.toISOString()}">${formatUtc(date)}</time>`;
}

export function csrfField(token: string | undefined): SafeHtml {
  return html`<input type="hidden" name="_csrf" value="${token}" />`;
}

/** The console's tab icon: a gate in the accent colour. */
export const CONSOLE_ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0b5fff"/><path d="M4 12V5h8v7M8 5v7" stroke="#fff" stroke-width="1.5" fill="none"/></svg>`;

export const CONSOLE_CSS = `
:root { --fg:#1b1f24; --muted:#59636e; --bg:#fff; --card:#f6f8fa; --line:#d1d9e0; --accent:#0b5fff; --danger:#c62828; --ok:#1a7f37; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
@media (prefers-color-scheme: dark) { :root { --fg:#e6edf3; --muted:#9198a1; --bg:#0d1117; --card:#151b23; --line:#3d444d; --accent:#4493f8; --danger:#f85149; --ok:#3fb950; } }
* { box-sizing: border-box; }
body { margin:0; color:var(--fg); background:var(--bg); line-height:1.5; }
a { color:var(--accent); }
.sr { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
.skip { position:absolute; left:-999px; } .skip:focus { left:1rem; top:1rem; }
.top { display:flex; justify-content:space-between; align-items:center; padding:.75rem 1.5rem; border-bottom:1px solid var(--line); }
.top nav { display:flex; gap:1rem; align-items:center; }
.brand { font-weight:700; text-decoration:none; color:var(--fg); }
.who { color:var(--muted); }
main { max-width:52rem; margin:2rem auto; padding:0 1.5rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:1.25rem; margin:1rem 0; }
.field { margin:0 0 1rem; }
label { display:block; font-weight:600; margin-bottom:.25rem; }
input[type=text], input[type=email], input[type=password], input[type=url], input[type=number], select, textarea { width:100%; max-width:28rem; padding:.5rem; border:1px solid var(--line); border-radius:6px; background:var(--bg); color:var(--fg); font:inherit; }
button, .button { font:inherit; padding:.45rem 1rem; border-radius:6px; border:1px solid var(--line); background:var(--accent); color:#fff; cursor:pointer; text-decoration:none; display:inline-block; }
button.secondary { background:var(--card); color:var(--fg); }
button.danger { background:var(--danger); border-color:var(--danger); }
button.link { background:none; border:none; color:var(--accent); padding:0; text-decoration:underline; }
form.inline { display:inline; }
label.inline-label { display:inline; margin-left:.4rem; }
fieldset { border:1px solid var(--line); border-radius:8px; padding:.75rem 1rem; }
td select { width:auto; }
section { margin:1.5rem 0; }
section > form { margin-top:1rem; }
:focus-visible { outline:3px solid var(--accent); outline-offset:2px; }
.hint { color:var(--muted); margin:0 0 .25rem; font-size:.9rem; }
.error { color:var(--danger); margin:0 0 .25rem; font-weight:600; }
.has-error input { border-color:var(--danger); }
.error-summary { border:2px solid var(--danger); border-radius:8px; padding:.75rem 1rem; margin-bottom:1rem; }
.error-summary p { margin:0; font-weight:600; }
.flash { border:1px solid var(--ok); border-radius:8px; padding:.75rem 1rem; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:.5rem; border-bottom:1px solid var(--line); vertical-align:middle; }
code, .secret { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; word-break:break-all; }
.secret { display:block; padding:.5rem; background:var(--bg); border:1px dashed var(--line); border-radius:6px; }
.muted { color:var(--muted); }
svg.chart { width:100%; max-width:600px; height:auto; display:block; }
svg.chart .hits, .legend-hits { fill:#2f855a; color:#2f855a; }
svg.chart .misses, .legend-misses { fill:#c05621; color:#c05621; }
`;
