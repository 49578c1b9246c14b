// GET /v1/connect/sessions/{token}: where a connect session stands (pending, completed, …).
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { connectSessionSchema, dataOf } from '@edgegate/contract';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { getSessionForPrincipal, toConnectSession } from '../../../connect/sessions.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerGetConnectSession(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/connect/sessions/:token',
    {
      schema: {
        summary: 'Get a connect session',
        tags: ['connect'],
        params: z.object({
          token: z.string().max(100).describe('The token the session was created with'),
        }),
        response: { 200: dataOf(connectSessionSchema), ...problemResponses },
      },
    },
    async (request) => {
      const principal = requireWorkspaceScope(request, 'connections:read');
      const row = await getSessionForPrincipal(deps.db, principal, request.params.token);
      return { data: toConnectSession(row) };
    },
  );
}
