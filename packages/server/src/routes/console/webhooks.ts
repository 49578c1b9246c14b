// GET /w/:slug/settings/webhooks and its "Send a test event" forms: the workspace's webhook
// endpoints with their latest delivery, through the same services as /v1/webhooks.
import type { EventEmitter } from 'node:events';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/store.ts';
import {
  listDeliveries,
  listWebhooks,
  MAX_WEBHOOKS_PER_WORKSPACE,
  sendTestEvent,
} from '../../connect/webhooks.ts';
import { announceDeliveries } from '../../connect/events.ts';
import { webhooksPage } from '../../views/webhooks.ts';
import { consolePrincipal } from './principal.ts';
import { requireUser, sendPage } from './render.ts';

interface SlugParams {
  slug: string;
}
interface WebhookParams extends SlugParams {
  id: string;
}

export function registerWebhooksRoutes(app: FastifyInstance, deps: { db: Db; bus: EventEmitter }) {
  const { db, bus } = deps;
  const html_ = { config: { html: true } };
  const pathOf = (slug: string) => `/w/${slug}/settings/webhooks`;

  app.get<{ Params: SlugParams }>('/w/:slug/settings/webhooks', html_, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    const { workspace, principal } = await consolePrincipal(db, user, request.params.slug);
    // A workspace has at most MAX_WEBHOOKS_PER_WORKSPACE endpoints, so one page holds them all.
    const rows = await listWebhooks(db, principal, { limit: MAX_WEBHOOKS_PER_WORKSPACE });
    const webhooks = await Promise.all(
      rows.map(async (webhook) => ({
        webhook,
        lastDelivery: (await listDeliveries(db, principal, webhook.id))[0],
      })),
    );
    return sendPage(request, reply, {
      title: `Webhooks · ${workspace.name}`,
      body: webhooksPage({
        base: `/w/${workspace.slug}`,
        workspaceName: workspace.name,
        webhooks,
        csrf: request.csrfToken(),
      }),
    });
  });

  app.post<{ Params: WebhookParams }>(
    '/w/:slug/settings/webhooks/:id/test',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const { workspace, principal } = await consolePrincipal(db, user, request.params.slug);
      const { id } = request.params;
      await sendTestEvent(db, principal, id);
      announceDeliveries(bus);
      const rows = await listWebhooks(db, principal, { limit: MAX_WEBHOOKS_PER_WORKSPACE });
      const webhook = rows.find((row) => row.id === id);
      reply.flash({ message: `Test event queued for ${webhook?.url ?? id}` });
      return reply.redirect(pathOf(workspace.slug), 303);
    },
  );
}
