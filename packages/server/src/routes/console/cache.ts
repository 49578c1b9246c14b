// One cache's console page: its details, settings, rules, the connection-string converter and
// deletion; every form calls the service the /v1 API calls, acting as the signed-in member.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CacheCreate, InvalidationInput, RuleCreate } from '@edgegate/contract';
import type { Db } from '../../db/store.ts';
import type { User } from '../../db/schema.ts';
import { Problem } from '../../problem.ts';
import {
  deleteCache,
  getCache,
  toCacheWithReport,
  updateCache,
  type OriginPolicy,
} from '../../services/caches.ts';
import type { ReplicationDeps } from '../../services/cache-invalidation.ts';
import { createRule, deleteRule, listRules } from '../../services/rules.ts';
import { convertConnectionString, type EdgeAddress } from '../../services/connection-strings.ts';
import {
  cacheFormOf,
  cachePage,
  EMPTY_RULE_FORM,
  invalidationFormOf,
  type CacheFormValues,
  type ConverterState,
  type FormState,
  type InvalidationFormValues,
  type RuleFormValues,
} from '../../views/caches.ts';
import { consolePrincipal, formRefusal } from './principal.ts';
import { summarizeCacheMetrics } from '../../services/cache-metrics.ts';
import { metricsSection } from '../../views/cache-metrics.ts';
import { formValue, requireUser, sendPage } from './render.ts';

export interface ConsoleCacheDeps {
  db: Db;
  originPolicy: OriginPolicy;
  edge: EdgeAddress;
  /** An edge in this process: flushed first so the page shows the last seconds. */
  flushEdgeMetrics?: () => Promise<void>;
  /** Replication invalidation: seals its password and checks the origin. */
  replication?: ReplicationDeps;
}

interface CacheParams {
  slug: string;
  id: string;
}

const RULES_SHOWN = 200;

/** A form field as a number for the schema to judge: empty is absent, anything else is Number(). */
function numberOf(text: string): number | undefined {
  return text.trim() === '' ? undefined : Number(text);
}

export function readCacheForm(body: unknown): CacheFormValues {
  return {
    name: formValue(body, 'name'),
    type: formValue(body, 'type'),
    hostname: formValue(body, 'hostname'),
    port: formValue(body, 'port'),
    defaultMode: formValue(body, 'defaultMode'),
    defaultTtlSeconds: formValue(body, 'defaultTtlSeconds'),
    sharedResults: formValue(body, 'sharedResults'),
  };
}

/** The form as typed; the service validates every field. */
export function toCacheInput(values: CacheFormValues): CacheCreate {
  return {
    name: values.name,
    type: values.type,
    hostname: values.hostname,
    // Both are required: an empty field is refused as "must be a number", never defaulted.
    port: numberOf(values.port) ?? Number.NaN,
    defaultMode: values.defaultMode,
    defaultTtlSeconds: numberOf(values.defaultTtlSeconds) ?? Number.NaN,
    // Absent: unchanged; anything but on/off goes to the service, which refuses it.
    ...(values.sharedResults === ''
      ? {}
      : {
          sharedResults:
            values.sharedResults === 'on'
              ? true
              : values.sharedResults === 'off'
                ? false
                : values.sharedResults,
        }),
  } as CacheCreate;
}

function readInvalidationForm(body: unknown): InvalidationFormValues {
  return {
    mode: formValue(body, 'mode'),
    username: formValue(body, 'username'),
    password: formValue(body, 'password'),
    database: formValue(body, 'database'),
    publication: formValue(body, 'publication'),
  };
}

/** Empty optional fields are absent; the service validates the rest. */
function toInvalidationInput(values: InvalidationFormValues): InvalidationInput {
  if (values.mode !== 'replication') return { mode: values.mode } as InvalidationInput;
  const optional = (value: string) => (value.trim() === '' ? undefined : value.trim());
  return {
    mode: 'replication',
    username: values.username,
    password: values.password,
    ...(optional(values.database) ? { database: optional(values.database) } : {}),
    ...(optional(values.publication) ? { publication: optional(values.publication) } : {}),
  };
}

function readRuleForm(body: unknown): RuleFormValues {
  return {
    kind: formValue(body, 'kind'),
    // Browsers send a textarea's line breaks as CRLF; applications' SQL, which rules match, uses LF.
    key: formValue(body, 'key').replaceAll('\r\n', '\n'),
    mode: formValue(body, 'mode'),
    ttlSeconds: formValue(body, 'ttlSeconds'),
    transactionPolicy: formValue(body, 'transactionPolicy'),
  };
}

function toRuleInput(values: RuleFormValues): RuleCreate {
  return { ...values, ttlSeconds: numberOf(values.ttlSeconds) } as RuleCreate;
}

export function registerCacheRoutes(app: FastifyInstance, deps: ConsoleCacheDeps) {
  const { db } = deps;
  const html_ = { config: { html: true } };

  /** The page as stored, with any one form replaced by what was typed into it. */
  const showCache = async (
    request: FastifyRequest<{ Params: CacheParams }>,
    reply: FastifyReply,
    user: User,
    overrides: {
      status?: number;
      edit?: FormState<CacheFormValues>;
      rule?: FormState<RuleFormValues>;
      converter?: ConverterState;
      invalidation?: FormState<InvalidationFormValues>;
    } = {},
  ) => {
    const { workspace, principal } = await consolePrincipal(db, user, request.params.slug);
    const cache = await getCache(db, principal, request.params.id, 'caches:read');
    const rules = await listRules(db, principal, cache.id, { limit: RULES_SHOWN });
    await deps.flushEdgeMetrics?.();
    const metrics = await summarizeCacheMetrics(db, cache.id, '1h');
    const body = cachePage({
      metrics: metricsSection(metrics),
      base: `/w/${workspace.slug}`,
      workspaceName: workspace.name,
      cache,
      rules: rules.slice(0, RULES_SHOWN),
      moreRules: rules.length > RULES_SHOWN,
      csrf: request.csrfToken(),
      edit: overrides.edit ?? { values: cacheFormOf(cache), errors: {} },
      rule: overrides.rule ?? { values: EMPTY_RULE_FORM, errors: {} },
      converter: overrides.converter ?? { connectionString: '', errors: {} },
      invalidation: {
        shown: (await toCacheWithReport(db, cache)).invalidation,
        form: overrides.invalidation ?? { values: invalidationFormOf(cache), errors: {} },
      },
    });
    return sendPage(request, reply, {
      title: `${cache.name} · Caches`,
      body,
      ...(overrides.status ? { status: overrides.status } : {}),
    });
  };

  app.get<{ Params: CacheParams }>('/w/:slug/caches/:id', html_, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    return showCache(request, reply, user);
  });

  app.post<{ Params: CacheParams }>('/w/:slug/caches/:id', html_, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    const { slug, id } = request.params;
    const { principal } = await consolePrincipal(db, user, slug);
    const values = readCacheForm(request.body);
    const version = formValue(request.body, 'version');
    const { type: _type, ...patch } = toCacheInput(values);
    try {
      const cache = await updateCache(db, principal, id, patch, deps.originPolicy, (current) => {
        if (version !== '' && String(current) !== version) {
          throw new Problem(
            'precondition_failed',
            412,
            'Someone changed this cache while you were editing it. Check your changes and save again.',
          );
        }
      });
      reply.flash({ message: `Settings of “${cache.name}” saved.` });
      return reply.redirect(`/w/${slug}/caches/${cache.id}`, 303);
    } catch (error) {
      const { status, ...refusal } = formRefusal(error);
      return showCache(request, reply, user, { status, edit: { values, ...refusal } });
    }
  });

  app.post<{ Params: CacheParams }>(
    '/w/:slug/caches/:id/invalidation',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const { slug, id } = request.params;
      const { principal } = await consolePrincipal(db, user, slug);
      const values = readInvalidationForm(request.body);
      try {
        const cache = await updateCache(
          db,
          principal,
          id,
          { invalidation: toInvalidationInput(values) },
          deps.originPolicy,
          () => undefined,
          deps.replication,
        );
        reply.flash({
          message:
            cache.invalidation_mode === 'edge'
              ? `“${cache.name}” drops cached reads on writes through the edge.`
              : `“${cache.name}” follows its database's change stream.`,
        });
        return reply.redirect(`/w/${slug}/caches/${cache.id}#invalidation-heading`, 303);
      } catch (error) {
        const { status, errors, message } = formRefusal(error);
        // The service names fields by their API path (`invalidation.username`); the form by name.
        const byField = Object.fromEntries(
          Object.entries(errors).map(([path, text]) => [
            path.replace(/^invalidation\.?/, '') || 'mode',
            text,
          ]),
        );
        return showCache(request, reply, user, {
          status,
          invalidation: { values: { ...values, password: '' }, errors: byField, message },
        });
      }
    },
  );

  app.post<{ Params: CacheParams }>('/w/:slug/caches/:id/delete', html_, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    const { slug, id } = request.params;
    const { principal } = await consolePrincipal(db, user, slug);
    const cache = await getCache(db, principal, id, 'caches:write');
    await deleteCache(db, principal, cache.id);
    reply.flash({ message: `Cache “${cache.name}” deleted.` });
    return reply.redirect(`/w/${slug}/caches`, 303);
  });

  app.post<{ Params: CacheParams }>('/w/:slug/caches/:id/rules', html_, async (request, reply) => {
    const user = requireUser(request, reply);
    if (!user) return reply;
    const { slug, id } = request.params;
    const { principal } = await consolePrincipal(db, user, slug);
    const values = readRuleForm(request.body);
    try {
      await createRule(db, principal, id, toRuleInput(values));
      reply.flash({ message: 'Rule added.' });
      return reply.redirect(`/w/${slug}/caches/${id}#rules-heading`, 303);
    } catch (error) {
      const { status, ...refusal } = formRefusal(error);
      return showCache(request, reply, user, { status, rule: { values, ...refusal } });
    }
  });

  app.post<{ Params: CacheParams & { ruleId: string } }>(
    '/w/:slug/caches/:id/rules/:ruleId/delete',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const { slug, id, ruleId } = request.params;
      const { principal } = await consolePrincipal(db, user, slug);
      await deleteRule(db, principal, id, ruleId);
      reply.flash({ message: 'Rule deleted.' });
      return reply.redirect(`/w/${slug}/caches/${id}#rules-heading`, 303);
    },
  );

  /**
   * Answers with the page itself rather than a redirect: the strings carry the origin's password,
   * so they may go in no cookie, URL or cache.
   */
  app.post<{ Params: CacheParams }>(
    '/w/:slug/caches/:id/connection-string',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const { principal } = await consolePrincipal(db, user, request.params.slug);
      const connectionString = formValue(request.body, 'connectionString');
      reply.header('cache-control', 'no-store');
      try {
        const converted = await convertConnectionString(
          db,
          principal,
          { cacheId: request.params.id, connectionString },
          deps.edge,
        );
        return showCache(request, reply, user, {
          converter: {
            connectionString,
            result: converted.connectionString,
            warnings: converted.warnings,
            errors: {},
          },
        });
      } catch (error) {
        const { status, ...refusal } = formRefusal(error);
        return showCache(request, reply, user, {
          status,
          converter: { connectionString, ...refusal },
        });
      }
    },
  );
}
