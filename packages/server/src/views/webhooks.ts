// A workspace's webhooks page: its endpoints, the latest delivery of each, and a "Send a test
// event" button per endpoint.
import type { WebhookRow } from '../db/schema.ts';
import type { WebhookDeliveryListRow } from '../connect/webhooks.ts';
import { html, type SafeHtml } from './html.ts';
import { csrfField, when } from './layout.ts';

export interface WebhookListing {
  webhook: WebhookRow;
  /** The newest delivery, as GET /v1/webhooks/{id}/deliveries lists it first; none yet: undefined. */
  lastDelivery: WebhookDeliveryListRow | undefined;
}

function deliveryStatus(delivery: WebhookDeliveryListRow | undefined): SafeHtml | string {
  if (!delivery) return html`<span class="muted">No deliveries yet</span>`;
  const answer = delivery.last_status ? ` (HTTP ${delivery.last_status})` : '';
  return html`<span data-testid="delivery-status">${delivery.status}</span>${answer}
    <span class="muted">${delivery.event_type}, ${when(delivery.created_at)}</span>`;
}

export function webhooksPage(options: {
  base: string;
  workspaceName: string;
  webhooks: WebhookListing[];
  csrf: string;
}): SafeHtml {
  const { base, workspaceName, webhooks } = options;
  const csrf = csrfField(options.csrf);
  return html`<nav aria-label="Breadcrumb">
      <p class="muted"><a href="${base}">Workspace settings</a> → Webhooks</p>
    </nav>
    <h1>Webhooks of ${workspaceName}</h1>
    <p>
      Endpoints that receive this workspace's events, signed with their secret. Register them with
      <code>POST /v1/webhooks</code>; a test event shows whether an endpoint receives and verifies
      deliveries.
    </p>
    ${
      webhooks.length === 0
        ? html`<p class="muted">No webhooks yet.</p>`
        : html`<table>
            <thead>
              <tr>
                <th scope="col">URL</th>
                <th scope="col">Events</th>
                <th scope="col">Created</th>
                <th scope="col">Last delivery</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              ${webhooks.map(
                ({ webhook, lastDelivery }) =>
                  html`<tr>
                    <td>
                      <code>${webhook.url}</code>
                      ${webhook.description ? html`<p class="muted">${webhook.description}</p>` : ''}
                    </td>
                    <td>
                      ${
                        webhook.events
                          ? webhook.events.map((type) => html`<code>${type}</code> `)
                          : 'All events'
                      }
                    </td>
                    <td>${when(webhook.created_at)}</td>
                    <td>${deliveryStatus(lastDelivery)}</td>
                    <td>
                      <form method="post" action="${base}/settings/webhooks/${webhook.id}/test">
                        ${csrf}
                        <button type="submit" aria-label="Send a test event to ${webhook.url}">
                          Send a test event
                        </button>
                      </form>
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }`;
}
