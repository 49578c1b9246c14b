// GET /settings/account/authorized-apps: the apps the user let in, each revocable, or all at once.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SCOPE_DESCRIPTIONS, type AppScope } from '@edgegate/contract';
import type { Db } from '../../db/store.ts';
import { html, type SafeHtml } from '../../views/html.ts';
import { csrfField, when } from '../../views/layout.ts';
import { listAuthorizedApps, revokeGrants } from '../../services/grants.ts';
import { Problem } from '../../problem.ts';
import { requireUser, sendPage } from './render.ts';

const PATH = '/settings/account/authorized-apps';

export function registerAuthorizedAppsRoutes(app: FastifyInstance, db: Db) {
  app.get(PATH, { config: { html: true } }, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    const grants = await listAuthorizedApps(db, user.id);
    const csrf = csrfField(request.csrfToken());
    return sendPage(request, reply, {
      title: 'Authorized apps',
      body: html`<p class="muted">Settings → Account → Authorized apps</p>
        <h1>Authorized apps</h1>
        <p>
          Apps you allowed to act in one of your workspaces. Revoking stops every token of that app
          at once.
        </p>
        ${
          grants.length
            ? html`<table>
                  <thead>
                    <tr>
                      <th scope="col">App</th>
                      <th scope="col">Workspace</th>
                      <th scope="col">Can</th>
                      <th scope="col">Granted</th>
                      <th scope="col">Last used</th>
                      <th scope="col"><span class="sr">Actions</span></th>
                    </tr>
                  </thead>
                  <tbody>
                    ${grants.map(
                      (g) =>
                        html`<tr>
                          <td>${g.appName}</td>
                          <td>
                            ${g.workspaceSlug ? html`<a href="/w/${g.workspaceSlug}">${g.workspaceName}</a>` : '—'}
                          </td>
                          <td>
                            <ul>
                              ${g.scopes.map((s) => html`<li title="${s}">${SCOPE_DESCRIPTIONS[s as AppScope] ?? s}</li>`)}
                            </ul>
                            ${
                              g.cacheIds
                                ? html`<p class="muted" data-testid="cache-limit">
                                    Only ${g.cacheIds.length === 1 ? 'cache' : 'caches'}
                                    ${g.cacheIds.map((id, i) => html`${i ? ', ' : ''}<code>${id}</code>`)}
                                  </p>`
                                : ''
                            }
                          </td>
                          <td>${when(g.grantedAt)}</td>
                          <td>${g.lastUsedAt ? when(g.lastUsedAt) : 'never'}</td>
                          <td>
                            <form method="post" action="${PATH}/${g.grantId}/revoke">
                              ${csrf}<button type="submit" class="danger">Revoke</button>
                            </form>
                          </td>
                        </tr>`,
                    )}
                  </tbody>
                </table>
                <form method="post" action="${PATH}/revoke-all">
                  ${csrf}<button type="submit" class="danger">Revoke all apps</button>
                </form>`
            : html`<p>You have not authorized any apps.</p>`
        }`,
    });
  });

  /** Revoking takes two steps that work without JavaScript: the list's button asks, this acts. */
  const confirmed = (body: unknown) => (body as { confirm?: unknown } | null)?.confirm === 'yes';

  const confirmPage = (
    request: FastifyRequest,
    reply: FastifyReply,
    options: { title: string; question: SafeHtml; action: string; button: string },
  ) =>
    sendPage(request, reply, {
      title: options.title,
      body: html`<h1>${options.title}</h1>
        <p>${options.question}</p>
        <form method="post" action="${options.action}">
          ${csrfField(request.csrfToken())}
          <input type="hidden" name="confirm" value="yes" />
          <button type="submit" class="danger">${options.button}</button>
          <a href="${PATH}">Cancel</a>
        </form>`,
    });

  app.post<{ Params: { grantId: string } }>(
    `${PATH}/:grantId/revoke`,
    { config: { html: true } },
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const { grantId } = request.params;
      if (!confirmed(request.body)) {
        const grant = (await listAuthorizedApps(db, user.id)).find((g) => g.grantId === grantId);
        if (!grant) throw new Problem('grant.not_found', 404, 'No such authorization.');
        return confirmPage(request, reply, {
          title: `Revoke ${grant.appName}?`,
          question: html`${grant.appName} will no longer be able to act in
          ${grant.workspaceName ?? 'your account'}: every token it holds stops working at once. What
          it created (caches, rules) stays with the workspace.`,
          action: `${PATH}/${grantId}/revoke`,
          button: 'Yes, revoke access',
        });
      }
      await revokeGrants(db, user.id, grantId);
      reply.flash({ message: 'Access revoked. The app can no longer use its tokens.' });
      return reply.redirect(PATH, 303);
    },
  );

  app.post(`${PATH}/revoke-all`, { config: { html: true } }, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    if (!confirmed(request.body)) {
      const count = (await listAuthorizedApps(db, user.id)).length;
      return confirmPage(request, reply, {
        title: 'Revoke all apps?',
        question: html`All ${count} app${count === 1 ? '' : 's'} you authorized will lose access at
        once, in every workspace; each would have to ask you again.`,
        action: `${PATH}/revoke-all`,
        button: 'Yes, revoke all apps',
      });
    }
    const count = await revokeGrants(db, user.id);
    reply.flash({ message: `Revoked access for ${count} app${count === 1 ? '' : 's'}.` });
    return reply.redirect(PATH, 303);
  });
}
