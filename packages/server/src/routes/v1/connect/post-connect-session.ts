// POST /v1/connect/sessions: mint a single-use link to the hosted connect page.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import {
  connectSessionCreateSchema,
  connectSessionCreatedSchema,
  dataOf,
} from '@edgegate/contract';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { createConnectSession } from '../../../connect/sessions.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerPostConnectSession(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/connect/sessions',
    {
      schema: {
        summary: 'Create a connect session',
        description:
          'Give `type` or `whitelist`. Open the returned `redirect_url` in a popup, an iframe or the whole window; the user comes back to your `redirect_url` with `code` and `state`. The token is shown only now. For an OAuth app, `redirect_url` must be on one of its registered origins.',
        tags: ['connect'],
        body: connectSessionCreateSchema,
        response: { 201: dataOf(connectSessionCreatedSchema), ...problemResponses },
      },
    },
    async (request, reply) => {
      const principal = requireWorkspaceScope(request, 'connections:write');
      const { row, token, pageUrl } = await createConnectSession(
        deps.db,
        principal,
        request.body,
        deps.publicUrl,
      );
      return reply.code(201).send({
        data: { redirect_url: pageUrl, token, expires_at: row.expires_at.toISOString() },
      });
    },
  );
}
