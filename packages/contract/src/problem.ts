// RFC 9457 problem details, the body of every error the HTTP API returns.
import { z } from 'zod';

export const problemSchema = z.object({
  type: z.string().describe('Stable URI naming the kind of error'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  instance: z.string().optional(),
  errors: z
    .array(z.object({ path: z.string(), message: z.string() }))
    .optional()
    .describe('Field-level validation errors'),
});

export type ProblemBody = z.infer<typeof problemSchema>;

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
