// Our half of the authorization flow: log-in (or the existing console session) and the consent
// page where the user picks exactly one workspace for the app.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors, type default as Provider } from 'oidc-provider';
import { SCOPE_DESCRIPTIONS, type AppScope } from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import { findWorkspaceById, listWorkspacesOfUser } from '../db/queries/workspaces.ts';
import { findUserById } from '../db/queries/users.ts';
import { Problem } from '../problem.ts';
import { logIn } from '../services/accounts.ts';
import type { LoginThrottle } from '../services/login-throttle.ts';
import { createSession } from '../services/sessions.ts';
import { alreadyDecided, grantConsent } from '../services/consent.ts';
import { html } from '../views/html.ts';
import { csrfField, errorSummary, field } from '../views/layout.ts';
import { formValue, formValues, sendPage } from '../routes/console/render.ts';
import { consoleCsp } from '../plugins/console-session.ts';
import type { ClientRegistry } from './adapter.ts';

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

interface UidParams {
  uid: string;
}

export function registerInteractionRoutes(
  app: FastifyInstance,
  deps: {
    db: Db;
    provider: Provider;
    clients: ClientRegistry;
    resource: string;
    throttle: LoginThrottle;
  },
) {
  const { db, provider, clients, resource, throttle } = deps;
  const htmlRoute = { config: { html: true } };

  async function details(request: FastifyRequest, reply: FastifyReply): Promise<Details> {
    try {
      const interaction = await provider.interactionDetails(request.raw, reply.raw);
      // The engine has already matched redirect_uri against the app's registered ones.
      const redirectUri = interaction.params.redirect_uri;
      if (typeof redirectUri === 'string')
        reply.header('content-security-policy', consoleCsp([new URL(redirectUri).origin]));
      return interaction;
    } catch (error) {
      // The only error the engine means as "no such interaction": the cookie is missing, or names
      // an interaction (or session) that is gone. Anything else, a store failure say, is ours.
      if (!(error instanceof errors.SessionNotFound)) throw error;
      throw new Problem(
        'oauth.interaction_expired',
        400,
        'This sign-in request has expired or was already finished. Go back to the app and start again.',
      );
    }
  }

  async function finish(
    request: FastifyRequest,
    reply: FastifyReply,
    result: Record<string, unknown>,
    merge = true,
  ) {
    const to = await provider.interactionResult(request.raw, reply.raw, result, {
      mergeWithLastSubmission: merge,
    });
    return reply.redirect(to, 303);
  }

  function loginPage(
    request: FastifyRequest,
    reply: FastifyReply,
    uid: string,
    appName: string,
    email = '',
    message?: string,
    status = 200,
  ) {
    return sendPage(request, reply, {
      title: 'Log in',
      status,
      body: html`<h1>Log in to continue to ${appName}</h1>
        ${errorSummary(message)}
        <form method="post" action="/oauth2/interaction/${uid}/login" novalidate>
          ${csrfField(request.csrfToken())}
          ${field({ name: 'email', label: 'Email', type: 'email', value: email, autocomplete: 'username' })}
          ${field({ name: 'password', label: 'Password', type: 'password', autocomplete: 'current-password' })}
          <button type="submit">Log in</button>
        </form>
        <form method="post" action="/oauth2/interaction/${uid}/abort">
          ${csrfField(request.csrfToken())}<button type="submit" class="secondary">Cancel</button>
        </form>
        <p>
          No account yet?
          <a href="/signup?next=${encodeURIComponent(`/oauth2/interaction/${uid}`)}">Create one</a>,
          then come back.
        </p>`,
    });
  }

  async function registeredApp(interaction: Details) {
    const registered = await clients.lookup(String(interaction.params.client_id));
    if (!registered)
      throw new Problem(
        'oauth.unknown_client',
        400,
        'The app that sent you here no longer exists.',
      );
    return registered;
  }

  /** The caches of each workspace, for the optional "only these caches" choice. */
  async function cachesOf(workspaceIds: string[]) {
    const byWorkspace = new Map<string, { id: string; name: string }[]>();
    if (workspaceIds.length === 0) return byWorkspace;
    const rows = await db
      .selectFrom('caches')
      .select(['id', 'name', 'workspace_id'])
      .where('workspace_id', 'in', workspaceIds)
      .orderBy('name')
      .execute();
    for (const row of rows) {
      const list = byWorkspace.get(row.workspace_id) ?? [];
      if (list.length < MAX_CACHES_SHOWN) list.push({ id: row.id, name: row.name });
      byWorkspace.set(row.workspace_id, list);
    }
    return byWorkspace;
  }

  async function consentPage(
    request: FastifyRequest,
    reply: FastifyReply,
    interaction: Details,
    message?: string,
    status = 200,
  ) {
    const user = request.user!;
    const { app: oauthApp } = await registeredApp(interaction);
    const ownerName = await appOwnerName(db, oauthApp);
    const scopes = requestedScopes(interaction, resource);
    const workspaces = await listWorkspacesOfUser(db, user.id);
    const cachesByWorkspace = await cachesOf(workspaces.map((w) => w.id));
    const hint = String(interaction.params.workspace ?? '');
    const preselected =
      workspaces.find((w) => w.slug === hint || w.id === hint)?.id ??
      (workspaces.length === 1 ? workspaces[0]?.id : undefined);
    const uid = interaction.uid;
    return sendPage(request, reply, {
      title: `Authorize ${oauthApp.name}`,
      status,
      body: html`<div class="consent">
        ${oauthApp.logo_url ? html`<img src="${oauthApp.logo_url}" alt="" width="64" height="64" />` : ''}
        <h1>${oauthApp.name} wants to access your Edgegate workspace</h1>
        <p class="muted">
          Made by
          ${ownerName}${oauthApp.homepage_url ? html` · <a href="${oauthApp.homepage_url}" rel="noopener noreferrer">${oauthApp.homepage_url}</a>` : ''}
        </p>
        ${oauthApp.description ? html`<p>${oauthApp.description}</p>` : ''} ${errorSummary(message)}
        <form method="post" action="/oauth2/interaction/${uid}/consent">
          ${csrfField(request.csrfToken())}
          <h2>It will be able to</h2>
          <ul>
            ${scopes.map((s) => html`<li>${SCOPE_DESCRIPTIONS[s as AppScope] ?? s} <code class="muted">${s}</code></li>`)}
          </ul>
          <fieldset>
            <legend><strong>In which workspace?</strong> Choose exactly one.</legend>
            ${
              workspaces.length
                ? workspaces.map(
                    (w) =>
                      html`<div>
                        <input
                          type="radio"
                          name="workspace"
                          id="ws-${w.id}"
                          value="${w.id}"
                          ${w.id === preselected ? ' checked' : ''}
                          required
                        />
                        <label for="ws-${w.id}" class="inline-label"
                          >${w.name} <span class="muted">(${w.role})</span></label
                        >
                        ${cacheChoice(w.id, cachesByWorkspace.get(w.id) ?? [])}
                      </div>`,
                  )
                : html`<p>You are not a member of any workspace. Create one first.</p>`
            }
          </fieldset>
          <p>
            Signed in as <strong>${user.email}</strong>. You can revoke this access at any time in
            <a href="/settings/account/authorized-apps">Settings → Authorized apps</a>.
          </p>
          <button
            type="submit"
            name="decision"
            value="allow"
            ${workspaces.length ? '' : ' disabled'}
          >
            Allow
          </button>
          <button type="submit" name="decision" value="deny" class="secondary" formnovalidate>
            Deny
          </button>
        </form>
      </div>`,
    });
  }

  app.get<{ Params: UidParams }>('/oauth2/interaction/:uid', htmlRoute, async (request, reply) => {
    const interaction = await details(request, reply);
    const registered = await clients.lookup(String(interaction.params.client_id));
    if (interaction.prompt.name === 'login') {
      // Someone already signed in to the console does not type their password again, unless the
      // app asked for a fresh log-in (prompt=login) or a recent one (max_age). The console
      // session's start is not known here, so no ts is claimed (the engine records now).
      const { reasons } = interaction.prompt;
      const fresh = reasons.includes('login_prompt') || reasons.includes('max_age');
      if (request.user && !fresh)
        return finish(request, reply, { login: { accountId: request.user.id } });
      return loginPage(
        request,
        reply,
        interaction.uid,
        registered?.app.name ?? 'the app',
        fresh ? (request.user?.email ?? '') : '',
      );
    }
    if (!request.user || request.user.id !== interaction.session?.accountId) {
      return loginPage(
        request,
        reply,
        interaction.uid,
        registered?.app.name ?? 'the app',
        '',
        'Log in again to continue.',
      );
    }
    return consentPage(request, reply, interaction);
  });

  app.post<{ Params: UidParams }>(
    '/oauth2/interaction/:uid/login',
    htmlRoute,
    async (request, reply) => {
      const interaction = await details(request, reply);
      const email = formValue(request.body, 'email');
      try {
        const user = await logIn(db, throttle, {
          email,
          password: formValue(request.body, 'password'),
          ip: request.ip,
        });
        const token = await createSession(db, user.id, {
          ip: request.ip,
          userAgent: request.headers['user-agent'] ?? null,
        });
        reply.startSession(token);
        const ts = Math.floor(Date.now() / 1000);
        return finish(request, reply, { login: { accountId: user.id, ts } });
      } catch (error) {
        if (!(error instanceof Problem) || error.status >= 500) throw error;
        reply.headers(error.headers);
        const registered = await clients.lookup(String(interaction.params.client_id));
        return loginPage(
          request,
          reply,
          interaction.uid,
          registered?.app.name ?? 'the app',
          email,
          error.message,
          error.status,
        );
      }
    },
  );

  app.post<{ Params: UidParams }>(
    '/oauth2/interaction/:uid/consent',
    htmlRoute,
    async (request, reply) => {
      const interaction = await details(request, reply);
      const accountId = interaction.session?.accountId;
      if (!request.user || request.user.id !== accountId) {
        throw new Problem(
          'oauth.session_mismatch',
          403,
          'You are signed in as someone else. Go back to the app and start again.',
        );
      }
      if (formValue(request.body, 'decision') !== 'allow') {
        if (interaction.result?.consent) throw alreadyDecided();
        return finish(
          request,
          reply,
          { error: 'access_denied', error_description: 'The user denied access.' },
          false,
        );
      }
      const registered = await registeredApp(interaction);
      try {
        const grantId = await grantConsent(db, provider, {
          interaction,
          userId: accountId,
          workspaceId: formValue(request.body, 'workspace'),
          cacheIds: formValues(request.body, 'cache').filter(Boolean),
          app: { name: registered.app.name, scopes: registered.scopes },
          shownScopes: requestedScopes(interaction, resource),
        });
        return finish(request, reply, { consent: { grantId } });
      } catch (error) {
        if (
          !(error instanceof Problem) ||
          !['oauth.workspace_required', 'oauth.caches_outside_workspace'].includes(error.code)
        )
          throw error;
        return consentPage(request, reply, interaction, error.message, error.status);
      }
    },
  );

  app.post<{ Params: UidParams }>(
    '/oauth2/interaction/:uid/abort',
    htmlRoute,
    async (request, reply) => {
      await details(request, reply);
      return finish(
        request,
        reply,
        { error: 'access_denied', error_description: 'The user cancelled.' },
        false,
      );
    },
  );
}

function requestedScopes(interaction: Details, resource: string): string[] {
  const missing = interaction.prompt.details as {
    missingOIDCScope?: string[];
    missingResourceScopes?: Record<string, string[]>;
  };
  const api = missing.missingResourceScopes?.[resource] ?? [];
  const offline = (missing.missingOIDCScope ?? []).filter((s) => s === 'offline_access');
  return [...api, ...offline];
}

async function appOwnerName(
  db: Db,
  app: { owner_workspace_id: string | null; owner_user_id: string | null },
) {
  if (app.owner_workspace_id) {
    return (await findWorkspaceById(db, app.owner_workspace_id))?.name ?? 'unknown';
  }
  const user = app.owner_user_id ? await findUserById(db, app.owner_user_id) : undefined;
  return user ? user.name || user.email : 'unknown';
}

/** Caches listed per workspace on the consent page; a workspace with more is granted whole or by API key. */
const MAX_CACHES_SHOWN = 50;

/**
 * Optional narrowing (SPEC §3, as PlanetScale narrows to a database): leaving every box empty
 * grants the whole workspace, including caches created later.
 */
function cacheChoice(workspaceId: string, caches: { id: string; name: string }[]) {
  if (caches.length === 0) return '';
  return html`<details class="cache-choice">
    <summary>Only some caches of this workspace?</summary>
    <p class="muted">
      Tick the caches the app may use. Leave all unticked for every cache, including ones created
      later.
    </p>
    ${caches.map(
      (c) =>
        html`<div>
          <input type="checkbox" name="cache" id="cache-${workspaceId}-${c.id}" value="${c.id}" />
          <label for="cache-${workspaceId}-${c.id}" class="inline-label"
            >${c.name} <code class="muted">${c.id}</code></label
          >
        </div>`,
    )}
  </details>`;
}
