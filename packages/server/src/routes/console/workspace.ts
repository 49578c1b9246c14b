// GET /w/:slug and its forms: rename, members and roles, invitations, leave, recent activity.
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/store.ts';
import { html } from '../../views/html.ts';
import { csrfField, errorSummary, field, formatUtc, when } from '../../views/layout.ts';
import { Problem } from '../../problem.ts';
import { listMembers } from '../../db/queries/workspaces.ts';
import { listOpenInvitations } from '../../db/queries/invitations.ts';
import { listAuditEvents } from '../../db/queries/audit-events.ts';
import {
  changeMemberRole,
  createInvitation,
  getWorkspaceForMember,
  removeMember,
  renameWorkspace,
  revokeInvitation,
} from '../../services/workspaces.ts';
import { formValue, requireUser, sendPage } from './render.ts';

interface SlugParams {
  slug: string;
}
interface MemberParams extends SlugParams {
  userId: string;
}

export function registerWorkspaceRoutes(app: FastifyInstance, db: Db, publicUrl: string) {
  const html_ = { config: { html: true } };

  app.get<{ Params: SlugParams }>('/w/:slug', html_, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    const workspace = await getWorkspaceForMember(db, request.params.slug, user.id);
    const isAdmin = workspace.role === 'admin';
    const [members, invitations, events] = await Promise.all([
      listMembers(db, workspace.id),
      isAdmin ? listOpenInvitations(db, workspace.id, new Date()) : Promise.resolve([]),
      isAdmin ? listAuditEvents(db, workspace.id, 20) : Promise.resolve([]),
    ]);
    const csrf = csrfField(request.csrfToken());
    const base = `/w/${workspace.slug}`;
    const body = html`<h1>${workspace.name}</h1>
      <p class="muted">
        Slug <code>${workspace.slug}</code> · your role: <strong>${workspace.role}</strong>
      </p>
      ${isAdmin ? html`<p><a href="${base}/settings/integrations">Integrations</a></p>` : ''}
      <p>
        <a href="${base}/caches">Caches</a> ·
        <a href="${base}/settings/credentials">API keys &amp; service tokens</a> ·
        <a href="${base}/settings/webhooks">Webhooks</a>
      </p>
      <section aria-labelledby="members-heading">
        <h2 id="members-heading">Members</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">Member</th>
              <th scope="col">Role</th>
              ${isAdmin ? html`<th scope="col">Actions</th>` : ''}
            </tr>
          </thead>
          <tbody>
            ${members.map(
              (m) =>
                html`<tr>
                  <td>
                    ${m.name ? html`${m.name} <span class="muted">${m.email}</span>` : m.email}${m.userId === user.id ? ' (you)' : ''}
                  </td>
                  <td>${m.role}</td>
                  ${
                    isAdmin
                      ? html`<td>
                          <form
                            method="post"
                            action="${base}/members/${m.userId}/role"
                            class="inline"
                          >
                            ${csrf}
                            <label class="sr" for="role-${m.userId}">Role of ${m.email}</label>
                            <select id="role-${m.userId}" name="role">
                              <option value="member" ${m.role === 'member' ? ' selected' : ''}>
                                member
                              </option>
                              <option value="admin" ${m.role === 'admin' ? ' selected' : ''}>
                                admin
                              </option>
                            </select>
                            <button type="submit" class="secondary">Change role</button>
                          </form>
                          ${
                            m.userId !== user.id
                              ? html`<form
                                  method="post"
                                  action="${base}/members/${m.userId}/remove"
                                  class="inline"
                                >
                                  ${csrf}<button type="submit" class="danger">Remove</button>
                                </form>`
                              : ''
                          }
                        </td>`
                      : ''
                  }
                </tr>`,
            )}
          </tbody>
        </table>
        <form method="post" action="${base}/leave">
          ${csrf}<button type="submit" class="secondary">Leave this workspace</button>
        </form>
      </section>
      ${
        isAdmin
          ? html`<section class="card" aria-labelledby="invite-heading">
                <h2 id="invite-heading">Invite someone</h2>
                <p>Create a single-use link and send it to the person you want to invite.</p>
                <form method="post" action="${base}/invitations">
                  ${csrf}
                  <div class="field">
                    <label for="invite-role">Role</label>
                    <select id="invite-role" name="role">
                      <option value="member">member</option>
                      <option value="admin">admin</option>
                    </select>
                  </div>
                  <div class="field">
                    <label for="expiresInHours">Link expires after (hours)</label>
                    <input
                      id="expiresInHours"
                      name="expiresInHours"
                      type="number"
                      min="1"
                      max="720"
                      value="72"
                    />
                  </div>
                  <button type="submit">Create invitation link</button>
                </form>
                ${
                  invitations.length
                    ? html`<h3>Open invitations</h3>
                        <ul>
                          ${invitations.map(
                            (i) =>
                              html`<li>
                                ${i.role}, expires ${when(i.expires_at)}
                                <form
                                  method="post"
                                  action="${base}/invitations/${i.id}/revoke"
                                  class="inline"
                                >
                                  ${csrf}<button type="submit" class="link">Withdraw</button>
                                </form>
                              </li>`,
                          )}
                        </ul>`
                    : ''
                }
              </section>
              <section class="card" aria-labelledby="rename-heading">
                <h2 id="rename-heading">Rename</h2>
                <form method="post" action="${base}/rename">
                  ${csrf} ${field({ name: 'name', label: 'Workspace name', value: workspace.name })}
                  <button type="submit">Save name</button>
                </form>
              </section>
              <section aria-labelledby="activity-heading">
                <h2 id="activity-heading">Recent activity</h2>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">Who</th>
                      <th scope="col">What</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${events.map(
                      (e) =>
                        html`<tr>
                          <td>${when(e.createdAt)}</td>
                          <td>${e.actorEmail ?? '—'}</td>
                          <td><code>${e.action}</code></td>
                        </tr>`,
                    )}
                  </tbody>
                </table>
              </section>`
          : ''
      }`;
    return sendPage(request, reply, { title: workspace.name, body });
  });

  /** Runs a workspace form action; a rule violation becomes an error page with a way back. */
  const action = <P extends SlugParams>(
    path: string,
    run: (
      userId: string,
      params: P,
      body: unknown,
    ) => Promise<{ redirect: string; flash?: { message: string; secret?: string } }>,
  ) => {
    app.post(path, html_, async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const params = request.params as P;
      try {
        const outcome = await run(user.id, params, request.body);
        if (outcome.flash) reply.flash(outcome.flash);
        return reply.redirect(outcome.redirect, 303);
      } catch (error) {
        if (!(error instanceof Problem) || error.status >= 500 || error.status === 404) throw error;
        return sendPage(request, reply, {
          title: 'That did not work',
          status: error.status,
          body: html`<h1>That did not work</h1>
            ${errorSummary(error.message)}
            <p><a href="/w/${params.slug}">Back to the workspace</a></p>`,
        });
      }
    });
  };

  action<SlugParams>('/w/:slug/rename', async (userId, { slug }, body) => {
    await renameWorkspace(db, userId, slug, { name: formValue(body, 'name') });
    return { redirect: `/w/${slug}`, flash: { message: 'Workspace renamed.' } };
  });

  action<SlugParams>('/w/:slug/invitations', async (userId, { slug }, body) => {
    const invitation = await createInvitation(db, userId, slug, {
      role: formValue(body, 'role') || undefined,
      expiresInHours: formValue(body, 'expiresInHours') || undefined,
    });
    return {
      redirect: `/w/${slug}`,
      flash: {
        message: `Invitation link for a new ${invitation.role} created. It works once and expires ${formatUtc(invitation.expiresAt)}.`,
        secret: `${publicUrl}/invite/${invitation.token}`,
      },
    };
  });

  action<SlugParams & { id: string }>(
    '/w/:slug/invitations/:id/revoke',
    async (userId, { slug, id }) => {
      await revokeInvitation(db, userId, slug, id);
      return { redirect: `/w/${slug}`, flash: { message: 'Invitation withdrawn.' } };
    },
  );

  action<MemberParams>(
    '/w/:slug/members/:userId/role',
    async (userId, { slug, userId: target }, body) => {
      await changeMemberRole(db, userId, slug, target, formValue(body, 'role'));
      return { redirect: `/w/${slug}`, flash: { message: 'Role changed.' } };
    },
  );

  action<MemberParams>(
    '/w/:slug/members/:userId/remove',
    async (userId, { slug, userId: target }) => {
      await removeMember(db, userId, slug, target);
      return { redirect: `/w/${slug}`, flash: { message: 'Member removed.' } };
    },
  );

  action<SlugParams>('/w/:slug/leave', async (userId, { slug }) => {
    await removeMember(db, userId, slug, userId);
    return { redirect: '/workspaces', flash: { message: 'You left the workspace.' } };
  });
}
