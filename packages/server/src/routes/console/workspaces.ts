// GET and POST /workspaces: the user's workspaces and a form to create one.
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/store.ts';
import { html } from '../../views/html.ts';
import { csrfField, errorSummary, field, type FieldErrors } from '../../views/layout.ts';
import { Problem } from '../../problem.ts';
import { listWorkspacesOfUser } from '../../db/queries/workspaces.ts';
import { createWorkspace } from '../../services/workspaces.ts';
import { fieldErrors, formValue, requireUser, sendPage } from './render.ts';

export function registerWorkspacesRoutes(app: FastifyInstance, db: Db) {
  const render = async (
    userId: string,
    csrf: string,
    values: { name?: string },
    errors: FieldErrors = {},
  ) => {
    const workspaces = await listWorkspacesOfUser(db, userId);
    return html`<h1>Your workspaces</h1>
      <table>
        <thead>
          <tr>
            <th scope="col">Workspace</th>
            <th scope="col">Slug</th>
            <th scope="col">Your role</th>
          </tr>
        </thead>
        <tbody>
          ${workspaces.map(
            (w) =>
              html`<tr>
                <td>
                  <a href="/w/${w.slug}">${w.name}</a
                  >${w.personal_for ? html` <span class="muted">(personal)</span>` : ''}
                </td>
                <td><code>${w.slug}</code></td>
                <td>${w.role}</td>
              </tr>`,
          )}
        </tbody>
      </table>
      <section class="card" aria-labelledby="create-heading">
        <h2 id="create-heading">Create a workspace</h2>
        ${errorSummary(undefined, errors)}
        <form method="post" action="/workspaces" novalidate>
          ${csrfField(csrf)}
          ${field({ name: 'name', label: 'Workspace name', value: values.name, error: errors.name })}
          <button type="submit">Create workspace</button>
        </form>
      </section>`;
  };

  app.get('/workspaces', { config: { html: true } }, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    return sendPage(request, reply, {
      title: 'Workspaces',
      body: await render(user.id, request.csrfToken(), {}),
    });
  });

  app.post('/workspaces', { config: { html: true } }, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    const name = formValue(request.body, 'name');
    try {
      const workspace = await createWorkspace(db, user.id, { name });
      reply.flash({ message: `Workspace “${workspace.name}” created.` });
      return reply.redirect(`/w/${workspace.slug}`, 303);
    } catch (error) {
      if (!(error instanceof Problem) || error.status !== 422) throw error;
      return sendPage(request, reply, {
        title: 'Workspaces',
        status: 422,
        body: await render(user.id, request.csrfToken(), { name }, fieldErrors(error)),
      });
    }
  });
}
