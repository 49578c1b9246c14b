// The partner app's pages: plain server-rendered HTML, every interpolated value escaped.
import type { Cache, CacheMetrics } from '@edgegate/sdk';

/** Markup that is already safe; everything else put into `html` is escaped. */
class Html {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

type Part = Html | string | number | null | undefined | false | Part[];

function escape(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

function render(part: Part): string {
  if (part instanceof Html) return part.text;
  if (Array.isArray(part)) return part.map(render).join('');
  if (part === null || part === undefined || part === false) return '';
  return escape(String(part));
}

function html(strings: TemplateStringsArray, ...parts: Part[]): Html {
  return new Html(strings.reduce((out, s, i) => out + render(parts[i - 1]) + s));
}

function page(title: string, body: Html): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · Acme Dashboards</title>
        <style>
          body {
            font:
              16px/1.5 system-ui,
              sans-serif;
            max-width: 44rem;
            margin: 2rem auto;
            padding: 0 1rem;
          }
          label {
            display: block;
            margin-top: 0.75rem;
          }
          input {
            display: block;
            width: 100%;
            padding: 0.3rem;
            box-sizing: border-box;
          }
          button {
            margin-top: 1rem;
            padding: 0.5rem 1rem;
          }
          code {
            word-break: break-all;
            background: #f3f3f3;
            padding: 0.2rem 0.4rem;
          }
          .alert {
            background: #fff3cd;
            padding: 0.75rem;
            border-radius: 4px;
          }
          .error {
            background: #fde2e1;
            padding: 0.75rem;
            border-radius: 4px;
          }
          dl {
            display: grid;
            grid-template-columns: max-content 1fr;
            gap: 0.25rem 1rem;
          }
          .muted {
            color: #666;
          }
        </style>
      </head>
      <body>
        <header>
          <strong>Acme Dashboards</strong> <span class="muted">· an Edgegate partner</span>
        </header>
        <main>${body}</main>
      </body>
    </html>`.text;
}

const csrfField = (token: string) => html`<input type="hidden" name="_csrf" value="${token}" />`;

export function connectPage(options: { csrfToken: string; revoked: boolean }): string {
  const { csrfToken, revoked } = options;
  return page(
    'Connect Edgegate',
    html`<h1>Speed up your dashboards</h1>
      ${
        revoked
          ? html`<p class="alert" role="alert">Edgegate access was revoked — reconnect</p>`
          : html`<p>
              Acme Dashboards can put an Edgegate cache in front of your database. Connect your
              Edgegate account and choose the workspace to use.
            </p>`
      }
      <form method="post" action="/connect">
        ${csrfField(csrfToken)}
        <button type="submit" data-testid="${revoked ? 'reconnect' : 'connect'}">
          Connect Edgegate
        </button>
      </form>`,
  );
}

export interface OriginForm {
  name: string;
  host: string;
  port: string;
  database: string;
  user: string;
}

export const EMPTY_ORIGIN: OriginForm = {
  name: 'dashboards',
  host: '',
  port: '5432',
  database: '',
  user: '',
};

export function databasePage(options: {
  csrfToken: string;
  workspaceName: string;
  edgegateUrl: string;
  form: OriginForm;
  error?: string;
}): string {
  const { csrfToken, workspaceName, edgegateUrl, form, error } = options;
  const field = (name: keyof OriginForm, label: string, type = 'text') =>
    html`<label
      >${label} <input name="${name}" type="${type}" value="${form[name]}" required
    /></label>`;
  return page(
    'Your database',
    html`<h1>Which database should we cache?</h1>
      <p>Connected to the Edgegate workspace <strong>${workspaceName}</strong>.</p>
      ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
      <form method="post" action="/caches">
        ${csrfField(csrfToken)} ${field('name', 'Cache name')} ${field('host', 'Host')}
        ${field('port', 'Port', 'number')} ${field('database', 'Database')} ${field('user', 'User')}
        <label
          >Password
          <input name="password" type="password" autocomplete="off" />
        </label>
        <p class="muted">
          The password goes into your connection string only: Edgegate never stores it.
        </p>
        <button type="submit">Create the cache</button>
      </form>

      <h2>Or let Edgegate ask for it</h2>
      <p>
        Edgegate's own page collects the credentials, checks they work and keeps them encrypted;
        Acme never sees them.
      </p>
      <button type="button" id="hosted-connect" data-csrf="${csrfToken}">
        Use Edgegate's connect page
      </button>
      <p id="hosted-error" class="error" hidden></p>
      <script src="${edgegateUrl}/connect.js"></script>
      <script>
        // docs/connect.md: open the popup inside the click, fetch its URL from our backend, and
        // hand the page's result code back to our backend (a blocked popup uses the whole window
        // and comes back to /connected by itself).
        document.getElementById('hosted-connect').addEventListener('click', function (event) {
          var csrf = event.currentTarget.dataset.csrf;
          Edgegate.connect({
            url: function () {
              return fetch('/connect-session', {
                method: 'POST',
                headers: { 'x-csrf-token': csrf },
              })
                .then(function (r) {
                  // Sent home: Edgegate access is gone, and the home page says so.
                  if (r.redirected) location.assign('/');
                  if (!r.ok || r.redirected)
                    throw new Error('could not start (HTTP ' + r.status + ')');
                  return r.json();
                })
                .then(function (s) {
                  return s.redirect_url;
                });
            },
          })
            .then(function (result) {
              location.assign(
                '/connected?code=' +
                  encodeURIComponent(result.code) +
                  '&state=' +
                  encodeURIComponent(result.state),
              );
            })
            .catch(function (error) {
              if (error.code === 'redirected') return;
              var box = document.getElementById('hosted-error');
              box.textContent =
                'Connecting did not finish (' + (error.code || error.message) + ').';
              box.hidden = false;
            });
        });
      </script>`,
  );
}

export function cachePage(options: {
  csrfToken: string;
  cache: Cache;
  metrics: CacheMetrics;
  connectionString: string | undefined;
  envPath: string;
}): string {
  const { csrfToken, cache, metrics, connectionString, envPath } = options;
  const ratio = metrics.hitRatio === null ? '—' : `${Math.round(metrics.hitRatio * 100)}%`;
  return page(
    'Your Edgegate cache',
    html`<h1>Your database now goes through Edgegate</h1>
      <p>Use this connection string in your application instead of the database's own:</p>
      <p><code data-testid="connection-string">${connectionString ?? '(not saved here)'}</code></p>
      <p class="muted">Saved as <code>DATABASE_URL</code> in <code>${envPath}</code>.</p>

      <h2>Status</h2>
      <dl data-testid="cache-status">
        <dt>Cache</dt>
        <dd>${cache.name} <span class="muted">(${cache.id})</span></dd>
        <dt>Origin</dt>
        <dd>${cache.type} at ${cache.hostname}:${cache.port}</dd>
        <dt>Caching</dt>
        <dd>${cache.defaultMode}, results kept up to ${cache.defaultTtlSeconds} s</dd>
        <dt>Last hour</dt>
        <dd>
          <span data-testid="hits">${metrics.hits}</span> hits,
          <span data-testid="misses">${metrics.misses}</span> misses (hit ratio ${ratio})
        </dd>
      </dl>

      <form method="post" action="/disconnect">
        ${csrfField(csrfToken)}
        <button type="submit">Disconnect Edgegate</button>
      </form>`,
  );
}

export function errorPage(message: string): string {
  return page(
    'Something went wrong',
    html`<h1>Something went wrong</h1>
      <p class="error" role="alert">${message}</p>
      <p><a href="/">Back</a></p>`,
  );
}
