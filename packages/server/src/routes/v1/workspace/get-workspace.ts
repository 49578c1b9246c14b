// GET /v1/workspace: the workspace the credential is bound to.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { workspaceSchema } from '@edgegate/contract';
import { problemResponses } from '../support/deps.ts';

export function registerGetWorkspace(app: FastifyInstance) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/workspace',
    {
      schema: {
        summary: 'The workspace this credential is bound to',
        tags: ['workspace'],
        response: { 200: z.object({ data: workspaceSchema }), ...problemResponses },
      },
    },
    async (request) => {
      const { workspace } = request.principal!;
      return {
        data: {
          id: workspace.id,
          name: workspace.name,
          slug: workspace.slug,
          createdAt: workspace.createdAt.toISOString(),
        },
      };
    },
  );
}
