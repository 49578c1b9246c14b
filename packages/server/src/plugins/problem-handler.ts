// The one error handler: problem+json for the API, an error page for the console.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PROBLEM_CONTENT_TYPE } from '@edgegate/contract';
import { Problem, PROBLEM_TYPE_BASE } from '../problem.ts';
import {
  isNetworkError,
  isStoreConnectionError,
  STORE_RETRY_AFTER_SECONDS,
} from '../db/store-errors.ts';
import { html } from '../views/html.ts';
import { page } from '../views/layout.ts';

const TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  410: 'No longer available',
  412: 'Precondition failed',
  414: 'URI too long',
  413: 'Payload too large',
  415: 'Unsupported media type',
  422: 'Unprocessable content',
  429: 'Too many requests',
  500: 'Internal server error',
  503: 'Service unavailable',
};

export function toProblem(error: FastifyError | Problem | Error): Problem {
  if (error instanceof Problem) return error;
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) {
    const errors = fastifyError.validation.map((v) => ({
      path: (v.instancePath || '').replace(/^\//, '').replace(/\//g, '.') || '(root)',
      message: v.message ?? 'is invalid',
    }));
    const where = fastifyError.validationContext ?? 'body';
    const detail = errors
      .map((e) => `${where === 'body' ? '' : `${where} `}${e.path}: ${e.message}`)
      .join('; ');
    // A body that parses but breaks the rules is unprocessable; a bad URL or query is a bad request.
    return new Problem('validation_failed', where === 'body' ? 422 : 400, detail, { errors });
  }
  const status = fastifyError.statusCode;
  if (status && status >= 400 && status < 500) {
    return new Problem(
      `request.${(fastifyError.code ?? 'invalid').toLowerCase()}`,
      status,
      error.message,
    );
  }
  return new Problem('internal', 500, 'Something went wrong on our side. It has been logged.');
}

export function wantsHtml(request: FastifyRequest): boolean {
  return (
    request.routeOptions.config?.html === true ||
    (request.headers.accept ?? '').startsWith('text/html')
  );
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: Problem) {
  reply.code(problem.status).headers(problem.headers);
  const title = TITLES[problem.status] ?? 'Error';
  if (wantsHtml(request)) {
    return reply.type('text/html; charset=utf-8').send(
      page({
        title,
        user: request.user,
        csrfToken: request.user ? request.csrfToken() : undefined,
        body: html`<h1>${title}</h1>
          <p>${problem.message}</p>
          <p><a href="/">Back to Edgegate</a></p>`,
      }),
    );
  }
  return reply.type(PROBLEM_CONTENT_TYPE).send({
    type: PROBLEM_TYPE_BASE + problem.code,
    title,
    status: problem.status,
    detail: problem.message,
    instance: request.url,
    ...(problem.errors ? { errors: problem.errors } : {}),
    ...problem.extensions,
  });
}

/**
 * `storeAnswers` (resolving when the store answers a query) lets a socket error be blamed on the
 * store only when the store does not answer either.
 */
export function registerProblemHandler(
  app: FastifyInstance,
  options: { storeAnswers?: () => Promise<void> } = {},
) {
  const storeDown = async (error: unknown): Promise<boolean> => {
    if (isStoreConnectionError(error)) return true;
    if (!isNetworkError(error) || options.storeAnswers === undefined) return false;
    let timer: NodeJS.Timeout | undefined;
    // A store that does not answer within a second is as good as down for this answer.
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), 1_000);
    });
    const answered = options.storeAnswers().then(
      () => false,
      () => true,
    );
    return Promise.race([answered, late]).finally(() => clearTimeout(timer));
  };
  app.setErrorHandler(async (error: FastifyError | Problem, request, reply) => {
    let problem = toProblem(error);
    if (problem.status === 500 && (await storeDown(error))) {
      request.log.warn({ err: error }, 'the store is unavailable: answered 503');
      problem = new Problem(
        'store.unavailable',
        503,
        `The service cannot reach its database right now. Retry after ${STORE_RETRY_AFTER_SECONDS} s.`,
        { headers: { 'retry-after': String(STORE_RETRY_AFTER_SECONDS) } },
      );
    } else if (problem.status >= 500 && !(error instanceof Problem)) {
      // A Problem is an answer chosen on purpose (503 from /readyz while draining); the rest are bugs.
      request.log.error({ err: error }, 'request failed');
    }
    return sendProblem(request, reply, problem);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      request,
      reply,
      new Problem('not_found', 404, `Nothing at ${request.method} ${request.url.split('?')[0]}.`),
    ),
  );
}
