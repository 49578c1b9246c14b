// POST /v1/connection-strings: an origin connection string in, the one through the edge out.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { connectionStringRequestSchema, connectionStringSchema, dataOf } from '@edgegate/contract';
import { requireScope } from '../../../plugins/credential-auth.ts';
import { convertConnectionString } from '../../../services/connection-strings.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerPostConnectionString(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/connection-strings',
    {
      schema: {
        summary: 'Convert a connection string to go through a cache',
        description:
          "Host and port become the edge's; Postgres gets the cache id in application_name, MySQL, " +
          'MariaDB and MS SQL get it as a prefix of the user name; every other part is kept exactly. ' +
          'Nothing is stored, so Idempotency-Key is ignored: a retry converts again.',
        tags: ['connection strings'],
        body: connectionStringRequestSchema,
        response: { 200: dataOf(connectionStringSchema), ...problemResponses },
      },
      // Nothing to repeat safely, and the response carries a password: never stored for replay.
      config: { idempotency: false },
    },
    async (request, reply) => {
      const principal = requireScope(request, 'caches:read');
      reply.header('cache-control', 'no-store');
      const converted = await convertConnectionString(deps.db, principal, request.body, deps.edge);
      return { data: converted };
    },
  );
}
