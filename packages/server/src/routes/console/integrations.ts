// The OAuth app registry in the console: a user's and a workspace's apps, registering one, an
// app's page, secret rotation and deletion.
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { OAuthAppCreateInput } from '@edgegate/contract';
import type { Db } from '../../db/store.ts';
import { html } from '../../views/html.ts';
import { formatUtc, type FieldErrors } from '../../views/layout.ts';
import {
  appCreateForm,
  appPage,
  appTable,
  EMPTY_APP_FORM,
  type AppFormValues,
} from '../../views/integrations.ts';
import { Problem } from '../../problem.ts';
import {
  createApp,
  deleteApp,
  describeManagedApp,
  listUserApps,
  listWorkspaceApps,
  rotateAppSecret,
  type CreatedApp,
} from '../../services/oauth-apps.ts';
import { formValue, requireUser, sendPage } from './render.ts';

interface SlugParams {
  slug: string;
}
interface AppParams {
  appId: string;
}

const ACCOUNT_PATH = '/settings/account/integrations';

function readAppForm(body: unknown): AppFormValues {
  const scopes = (body as Record<string, unknown> | undefined)?.scopes;
  return {
    name: formValue(body, 'name'),
    description: formValue(body, 'description'),
    logoUrl: formValue(body, 'logoUrl'),
    homepageUrl: formValue(body, 'homepageUrl'),
    redirectUris: formValue(body, 'redirectUris'),
    scopes: (Array.isArray(scopes) ? scopes : [scopes]).filter(
      (s): s is string => typeof s === 'string',
    ),
    clientType: formValue(body, 'clientType') || 'confidential',
  };
}

/** The form as typed; the service validates every field, including scopes and client type. */
function toAppInput(values: AppFormValues): OAuthAppCreateInput {
  const redirectUris = values.redirectUris
    .split(/\r?\n/)
    .map((uri) => uri.trim())
    .filter(Boolean);
  return { ...values, redirectUris } as OAuthAppCreateInput;
}

/** One message per form field: `redirectUris.2` and `scopes.0` belong to their whole list. */
function appFieldErrors(problem: Problem): FieldErrors {
  const messages = new Map<string, Set<string>>();
  for (const { path, message } of problem.errors ?? []) {
    const name = path.split('.')[0] ?? path;
    messages.set(name, (messages.get(name) ?? new Set()).add(message));
  }
  return Object.fromEntries([...messages].map(([name, set]) => [name, [...set].join('; ')]));
}

function isValidationProblem(error: unknown): error is Problem {
  return error instanceof Problem && error.status === 422;
}

function showCreatedApp(reply: FastifyReply, created: CreatedApp) {
  reply.flash(
    created.clientSecret
      ? {
          message: `App “${created.app.name}” created. Copy the client secret now; use it with the client id below.`,
          secret: created.clientSecret,
        }
      : {
          message: `App “${created.app.name}” created. It is a public client: it has no secret and uses PKCE.`,
        },
  );
  return reply.redirect(`/apps/${created.app.id}`, 303);
}

export function registerIntegrationsRoutes(app: FastifyInstance, db: Db) {
  const html_ = { config: { html: true } };

  const accountPage = async (
    userId: string,
    csrf: string,
    values = EMPTY_APP_FORM,
    errors: FieldErrors = {},
  ) =>
    html`<nav aria-label="Breadcrumb"><p class="muted">Settings → Account → Integrations</p></nav>
      <h1>Integrations</h1>
      <p>OAuth apps you own. They can ask people for access to their workspaces.</p>
      ${appTable(await listUserApps(db, userId))}
      ${appCreateForm(ACCOUNT_PATH, csrf, values, errors)}`;

  const workspacePage = async (
    userId: string,
    slug: string,
    csrf: string,
    values = EMPTY_APP_FORM,
    errors: FieldErrors = {},
  ) => {
    const { workspace, apps } = await listWorkspaceApps(db, userId, slug);
    const base = `/w/${workspace.slug}`;
    return {
      title: `Integrations · ${workspace.name}`,
      body: html`<nav aria-label="Breadcrumb">
          <p class="muted"><a href="${base}">Workspace settings</a> → Integrations</p>
        </nav>
        <h1>Integrations of ${workspace.name}</h1>
        <p>OAuth apps this workspace owns. Every admin of the workspace can manage them.</p>
        ${appTable(apps)} ${appCreateForm(`${base}/settings/integrations`, csrf, values, errors)}`,
    };
  };

  app.get(ACCOUNT_PATH, html_, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    const body = await accountPage(user.id, request.csrfToken());
    return sendPage(request, reply, { title: 'Integrations', body });
  });

  app.post(ACCOUNT_PATH, html_, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    const values = readAppForm(request.body);
    try {
      const owner = { kind: 'user' as const, userId: user.id };
      return showCreatedApp(reply, await createApp(db, user.id, owner, toAppInput(values)));
    } catch (error) {
      if (!isValidationProblem(error)) throw error;
      const body = await accountPage(user.id, request.csrfToken(), values, appFieldErrors(error));
      return sendPage(request, reply, { title: 'Integrations', status: 422, body });
    }
  });

  app.get<{ Params: SlugParams }>(
    '/w/:slug/settings/integrations',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const view = await workspacePage(user.id, request.params.slug, request.csrfToken());
      return sendPage(request, reply, view);
    },
  );

  app.post<{ Params: SlugParams }>(
    '/w/:slug/settings/integrations',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const { slug } = request.params;
      const values = readAppForm(request.body);
      try {
        const owner = { kind: 'workspace' as const, workspaceSlug: slug };
        return showCreatedApp(reply, await createApp(db, user.id, owner, toAppInput(values)));
      } catch (error) {
        if (!isValidationProblem(error)) throw error;
        const csrf = request.csrfToken();
        const view = await workspacePage(user.id, slug, csrf, values, appFieldErrors(error));
        return sendPage(request, reply, { ...view, status: 422 });
      }
    },
  );

  app.get<{ Params: AppParams }>('/apps/:appId', html_, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    const details = await describeManagedApp(db, user.id, request.params.appId);
    return sendPage(request, reply, {
      title: details.app.name,
      body: appPage(details, request.csrfToken()),
    });
  });

  app.post<{ Params: AppParams }>('/apps/:appId/rotate-secret', html_, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    const { appId } = request.params;
    const overlap = formValue(request.body, 'overlapHours').trim();
    try {
      const overlapHours = overlap === '' ? undefined : Number(overlap);
      const rotated = await rotateAppSecret(db, user.id, appId, overlapHours);
      reply.flash({
        message:
          overlapHours === 0
            ? 'New client secret created. The old one stopped working.'
            : `New client secret created. The old one keeps working until ${formatUtc(rotated.previousValidUntil)}.`,
        secret: rotated.clientSecret,
      });
      return reply.redirect(`/apps/${appId}`, 303);
    } catch (error) {
      if (!isValidationProblem(error)) throw error;
      const details = await describeManagedApp(db, user.id, appId);
      const body = appPage(details, request.csrfToken(), {
        overlapHours: overlap,
        errors: appFieldErrors(error),
      });
      return sendPage(request, reply, { title: details.app.name, status: 422, body });
    }
  });

  app.post<{ Params: AppParams }>('/apps/:appId/delete', html_, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    const { app: deleted, owner } = await describeManagedApp(db, user.id, request.params.appId);
    await deleteApp(db, user.id, deleted.id);
    reply.flash({
      message: `App “${deleted.name}” deleted. Every authorization of it was revoked.`,
    });
    return reply.redirect(owner.integrationsPath, 303);
  });
}
