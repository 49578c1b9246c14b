// GET|POST /w/:slug/caches: a workspace's caches and the form that creates one; also registers the
// routes of one cache's page.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { User } from '../../db/schema.ts';
import { createCache, listCaches } from '../../services/caches.ts';
import {
  cacheListPage,
  EMPTY_CACHE_FORM,
  type CacheFormValues,
  type FormState,
} from '../../views/caches.ts';
import {
  readCacheForm,
  registerCacheRoutes,
  toCacheInput,
  type ConsoleCacheDeps,
} from './cache.ts';
import { consolePrincipal, formRefusal } from './principal.ts';
import { requireUser, sendPage } from './render.ts';

interface SlugParams {
  slug: string;
}
interface ListQuery {
  after?: unknown;
}

const PAGE_SIZE = 50;

export function registerCachesRoutes(app: FastifyInstance, deps: ConsoleCacheDeps) {
  const { db } = deps;
  const html_ = { config: { html: true } };

  const showList = async (
    request: FastifyRequest<{ Params: SlugParams; Querystring: ListQuery }>,
    reply: FastifyReply,
    user: User,
    form: FormState<CacheFormValues> = { values: EMPTY_CACHE_FORM, errors: {} },
    status = 200,
  ) => {
    const { workspace, principal } = await consolePrincipal(db, user, request.params.slug);
    const after = typeof request.query.after === 'string' ? request.query.after : undefined;
    const rows = await listCaches(db, principal, { afterId: after, limit: PAGE_SIZE });
    const caches = rows.slice(0, PAGE_SIZE);
    const base = `/w/${workspace.slug}`;
    const last = caches.at(-1);
    const body = cacheListPage({
      base,
      workspaceName: workspace.name,
      caches,
      nextPage:
        rows.length > PAGE_SIZE && last
          ? `${base}/caches?after=${encodeURIComponent(last.id)}`
          : undefined,
      csrf: request.csrfToken(),
      form,
    });
    return sendPage(request, reply, { title: `Caches · ${workspace.name}`, body, status });
  };

  app.get<{ Params: SlugParams; Querystring: ListQuery }>(
    '/w/:slug/caches',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      return showList(request, reply, user);
    },
  );

  app.post<{ Params: SlugParams; Querystring: ListQuery }>(
    '/w/:slug/caches',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const { principal } = await consolePrincipal(db, user, request.params.slug);
      const values = readCacheForm(request.body);
      try {
        const cache = await createCache(db, principal, toCacheInput(values), deps.originPolicy);
        reply.flash({
          message: `Cache “${cache.name}” created. Convert your connection string below to start using it.`,
        });
        return reply.redirect(`/w/${request.params.slug}/caches/${cache.id}`, 303);
      } catch (error) {
        const { status, ...refusal } = formRefusal(error);
        return showList(request, reply, user, { values, ...refusal }, status);
      }
    },
  );

  registerCacheRoutes(app, deps);
}
