// GET /v1/events: the workspace's event log, oldest first, from a cursor; poll it with the
// returned cursor and nothing is missed, even when a webhook was.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { workspaceEventSchema } from '@edgegate/contract';
import { Problem } from '../../../problem.ts';
import { REALM } from '../../../plugins/credential-auth.ts';
import { EVENT_SCOPE, listEvents, toEvent, type EventType } from '../../../connect/events.ts';
import { insufficientScope } from '../../../plugins/credential-auth.ts';
import { problemResponses, type V1Deps } from '../support/deps.ts';

const querySchema = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1, 'limit must be at least 1')
    .max(100, 'limit must be at most 100')
    .default(50),
  cursor: z
    .string()
    .regex(/^e[0-9]{1,19}$/, 'cursor must be a value returned as nextCursor')
    .optional()
    .describe('Omit to start from the first event'),
});

export function registerGetEvents(app: FastifyInstance, deps: V1Deps) {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/events',
    {
      schema: {
        summary: 'Replay the event log',
        description:
          'Events the credential may read (connection.* with connections:read, cache.* with caches:read), in order. `nextCursor` is always set: keep it and ask again later for what happened since.',
        tags: ['events'],
        querystring: querySchema,
        response: {
          200: z.object({
            data: z.array(workspaceEventSchema),
            nextCursor: z.string(),
            hasMore: z.boolean(),
          }),
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const principal = request.principal;
      if (!principal)
        throw new Problem('auth.missing_credentials', 401, 'Authentication required.', {
          headers: { 'www-authenticate': REALM },
        });
      const types = (Object.keys(EVENT_SCOPE) as EventType[]).filter(
        (type) => principal.access.get(EVENT_SCOPE[type]) === null,
      );
      if (types.length === 0)
        throw insufficientScope(
          ['connections:read', 'caches:read'],
          'Reading events needs connections:read or caches:read for the whole workspace.',
        );
      const { limit, cursor } = request.query;
      const afterSeq = cursor ? Number(cursor.slice(1)) : 0;
      const rows = await listEvents(deps.db, principal.workspaceId, {
        afterSeq,
        limit: limit + 1,
        types,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        data: page.map(toEvent),
        nextCursor: `e${last ? last.seq : afterSeq}`,
        hasMore: rows.length > limit,
      };
    },
  );
}
