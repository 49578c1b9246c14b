// GET /v1/connection-types: the connect catalog, each type with its form as JSON Schema.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { connectionTypeSchema } from '@edgegate/contract';
import { CONNECTION_TYPE_ENTRIES } from '../../../connect/catalog/index.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

export function registerGetConnectionTypes(app: FastifyInstance, _deps: V1Deps) {
  const catalog = [...CONNECTION_TYPE_ENTRIES.values()];
  app.withTypeProvider<ZodTypeProvider>().get(
    '/connection-types',
    {
      schema: {
        summary: 'List connection types',
        description:
          'What the hosted connect page can collect: each type with the JSON Schema of its form and UI hints. Any valid credential may read it.',
        tags: ['connect'],
        response: { 200: z.object({ data: z.array(connectionTypeSchema) }), ...problemResponses },
      },
    },
    async () => ({ data: catalog }),
  );
}
