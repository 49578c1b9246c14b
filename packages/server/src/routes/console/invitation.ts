// GET and POST /invite/:token: see an invitation and accept it as the signed-in user.
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/store.ts';
import { html } from '../../views/html.ts';
import { csrfField } from '../../views/layout.ts';
import { acceptInvitation, describeInvitation } from '../../services/workspaces.ts';
import { sendPage } from './render.ts';

interface TokenParams {
  token: string;
}

export function registerInvitationRoutes(app: FastifyInstance, db: Db) {
  app.get<{ Params: TokenParams }>(
    '/invite/:token',
    { config: { html: true } },
    async (request, reply) => {
      const invitation = await describeInvitation(db, request.params.token);
      const here = encodeURIComponent(`/invite/${request.params.token}`);
      const body = html`<h1>Join ${invitation.workspaceName}</h1>
        <p>
          You have been invited to the workspace <strong>${invitation.workspaceName}</strong> as
          ${invitation.role === 'admin' ? 'an admin' : 'a member'}.
        </p>
        ${
          request.user
            ? html`<form method="post" action="/invite/${request.params.token}">
                ${csrfField(request.csrfToken())}
                <p>You will join as <strong>${request.user.email}</strong>.</p>
                <button type="submit">Accept invitation</button>
              </form>`
            : html`<p>
                <a class="button" href="/login?next=${here}">Log in to accept</a> or
                <a href="/signup?next=${here}">create an account</a>.
              </p>`
        }`;
      return sendPage(request, reply, { title: `Join ${invitation.workspaceName}`, body });
    },
  );

  app.post<{ Params: TokenParams }>(
    '/invite/:token',
    { config: { html: true } },
    async (request, reply) => {
      if (!request.user)
        return reply.redirect(`/login?next=${encodeURIComponent(request.url)}`, 303);
      const joined = await acceptInvitation(db, request.user.id, request.params.token);
      reply.flash({ message: `Welcome to ${joined.workspaceName}.` });
      return reply.redirect(`/w/${joined.workspaceSlug}`, 303);
    },
  );
}
