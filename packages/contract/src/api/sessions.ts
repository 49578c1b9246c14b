// Open client sessions of a cache on the edge (PgBouncer's SHOW CLIENTS): what the API returns.
import { z } from 'zod';

export const edgeSessionStateSchema = z
  .enum(['login', 'idle', 'active', 'in-transaction'])
  .describe(
    '`login`: startup or authentication not over; `idle`: nothing in flight; `active`: a query in flight; `in-transaction`: idle inside a transaction block',
  );

export const edgeSessionSchema = z.object({
  id: z
    .string()
    .describe(
      'Unique on its edge while the process runs (MySQL: the connection id, what KILL takes)',
    ),
  protocol: z.enum(['postgres', 'mysql']),
  cacheId: z.string(),
  user: z.string().nullable().describe('The database user the client logged in as'),
  database: z.string().nullable(),
  clientAddress: z.string().describe("The client's IP address as the edge sees it"),
  startedAt: z.string().describe('When the edge accepted the connection (ISO 8601)'),
  bytesIn: z.number().int().describe('Bytes received from the client'),
  bytesOut: z.number().int().describe('Bytes sent to the client'),
  queries: z
    .number()
    .int()
    .describe('Queries the client sent (each Sync of an extended query counts once)'),
  state: edgeSessionStateSchema,
});
export type EdgeSession = z.infer<typeof edgeSessionSchema>;

export const edgeSessionListSchema = z.object({ data: z.array(edgeSessionSchema) });
