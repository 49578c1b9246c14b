// POST /v1/connect/exchange: trade the page's single-use result code for the connection.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import {
  connectExchangeResultSchema,
  connectExchangeSchema,
  dataOf,
  type ConnectionTypeId,
} from '@edgegate/contract';
import { requireWorkspaceScope } from '../../../plugins/credential-auth.ts';
import { exchangeCode } from '../../../connect/sessions.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerPostConnectExchange(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/connect/exchange',
    {
      schema: {
        summary: 'Exchange a connect result code',
        description:
          "The code from your redirect_url (or the page's postMessage) is single-use, lives 10 minutes and works only with a credential of the same workspace (and the same OAuth app).",
        tags: ['connect'],
        body: connectExchangeSchema,
        response: { 200: dataOf(connectExchangeResultSchema), ...problemResponses },
      },
    },
    async (request) => {
      const principal = requireWorkspaceScope(request, 'connections:write');
      const row = await exchangeCode(deps.db, principal, request.body.code);
      return {
        data: { connectionId: row.id, type: row.type as ConnectionTypeId, name: row.name },
      };
    },
  );
}
