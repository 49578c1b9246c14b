// GET /w/:slug/settings/credentials and its forms: a member's API keys, and for admins the
// workspace's service tokens; new secrets are shown once, through the flash.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiKeyCreate, ServiceTokenCreate } from '@edgegate/contract';
import type { Db } from '../../db/store.ts';
import type { User } from '../../db/schema.ts';
import type { ServiceTokenAccess, ServiceTokenRow } from '../../db/queries/service-tokens.ts';
import type { FieldErrors } from '../../views/layout.ts';
import { createApiKey, deleteApiKey, listApiKeys } from '../../services/api-keys.ts';
import {
  createServiceToken,
  deleteServiceToken,
  listServiceTokens,
} from '../../services/service-tokens.ts';
import { listCaches } from '../../services/caches.ts';
import {
  credentialsPage,
  EMPTY_API_KEY_FORM,
  EMPTY_SERVICE_TOKEN_FORM,
  type ApiKeyFormValues,
  type CredentialsForm,
  type ServiceTokenFormValues,
} from '../../views/credentials.ts';
import { consolePrincipal, formRefusal } from './principal.ts';
import { formValue, formValues, requireUser, sendPage } from './render.ts';

interface SlugParams {
  slug: string;
}
interface CredentialParams extends SlugParams {
  id: string;
}

/** Enough for any workspace's page; the API lists beyond it. */
const LIST_LIMIT = 200;

/** A date field's day as the start of that day in UTC; anything else goes to the schema as typed. */
function expiresAtOf(day: string): string | undefined {
  if (day.trim() === '') return undefined;
  return /^\d{4}-\d{2}-\d{2}$/.test(day) ? `${day}T00:00:00Z` : day;
}

function readServiceTokenForm(body: unknown): ServiceTokenFormValues {
  const scopes = formValues(body, 'scope');
  const cacheIds = formValues(body, 'cacheId');
  return {
    tokenName: formValue(body, 'tokenName'),
    tokenExpiresOn: formValue(body, 'tokenExpiresOn'),
    accesses: scopes
      .map((scope, i) => ({ scope, cacheId: cacheIds[i] ?? '' }))
      .filter((row) => row.scope !== ''),
  };
}

/** The service's field paths as this page's field names; `accesses.2.scope` belongs to the editor. */
function renamed(errors: FieldErrors, names: Record<string, string>): FieldErrors {
  const out: FieldErrors = {};
  for (const [path, message] of Object.entries(errors)) {
    const head = path.split('.')[0] ?? path;
    const name = names[head] ?? head;
    out[name] = out[name] ? `${out[name]}; ${message}` : message;
  }
  return out;
}

export function registerCredentialsRoutes(app: FastifyInstance, db: Db) {
  const html_ = { config: { html: true } };
  const pathOf = (slug: string) => `/w/${slug}/settings/credentials`;

  const showPage = async (
    request: FastifyRequest<{ Params: SlugParams }>,
    reply: FastifyReply,
    user: User,
    forms: {
      status?: number;
      apiKey?: CredentialsForm<ApiKeyFormValues>;
      serviceToken?: CredentialsForm<ServiceTokenFormValues>;
    } = {},
  ) => {
    const { workspace, principal } = await consolePrincipal(db, user, request.params.slug);
    const isAdmin = workspace.role === 'admin';
    const page = { limit: LIST_LIMIT };
    const noTokens = {
      rows: [] as ServiceTokenRow[],
      accesses: new Map<string, ServiceTokenAccess[]>(),
    };
    const [keys, tokens, caches] = await Promise.all([
      listApiKeys(db, principal, page),
      isAdmin ? listServiceTokens(db, principal, page) : Promise.resolve(noTokens),
      listCaches(db, principal, page),
    ]);
    const body = credentialsPage({
      base: `/w/${workspace.slug}`,
      workspaceName: workspace.name,
      isAdmin,
      keys: keys.slice(0, LIST_LIMIT),
      tokens: tokens.rows.slice(0, LIST_LIMIT),
      accesses: tokens.accesses,
      caches: caches.slice(0, LIST_LIMIT),
      csrf: request.csrfToken(),
      apiKeyForm: forms.apiKey ?? { values: EMPTY_API_KEY_FORM, errors: {} },
      serviceTokenForm: forms.serviceToken ?? { values: EMPTY_SERVICE_TOKEN_FORM, errors: {} },
    });
    return sendPage(request, reply, {
      title: `API keys & service tokens · ${workspace.name}`,
      body,
      ...(forms.status ? { status: forms.status } : {}),
    });
  };

  app.get<{ Params: SlugParams }>(
    '/w/:slug/settings/credentials',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      return showPage(request, reply, user);
    },
  );

  app.post<{ Params: SlugParams }>(
    '/w/:slug/settings/credentials/apikeys',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const { principal } = await consolePrincipal(db, user, request.params.slug);
      const values: ApiKeyFormValues = {
        keyName: formValue(request.body, 'keyName'),
        keyExpiresOn: formValue(request.body, 'keyExpiresOn'),
      };
      const input: ApiKeyCreate = {
        name: values.keyName,
        expiresAt: expiresAtOf(values.keyExpiresOn),
      };
      try {
        const { row, key } = await createApiKey(db, principal, input);
        reply.flash({
          message: `API key “${row.name}” created. Copy it now and send it as Authorization: Bearer <key>.`,
          secret: key,
        });
        return reply.redirect(pathOf(request.params.slug), 303);
      } catch (error) {
        const { status, errors, message } = formRefusal(error);
        const fields = renamed(errors, { name: 'keyName', expiresAt: 'keyExpiresOn' });
        return showPage(request, reply, user, {
          status,
          apiKey: { values, errors: fields, message },
        });
      }
    },
  );

  app.post<{ Params: CredentialParams }>(
    '/w/:slug/settings/credentials/apikeys/:id/delete',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const { principal } = await consolePrincipal(db, user, request.params.slug);
      await deleteApiKey(db, principal, request.params.id);
      reply.flash({ message: 'API key deleted. It no longer works.' });
      return reply.redirect(pathOf(request.params.slug), 303);
    },
  );

  app.post<{ Params: SlugParams }>(
    '/w/:slug/settings/credentials/service-tokens',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const { principal } = await consolePrincipal(db, user, request.params.slug);
      const values = readServiceTokenForm(request.body);
      const input: ServiceTokenCreate = {
        name: values.tokenName,
        expiresAt: expiresAtOf(values.tokenExpiresOn),
        accesses: values.accesses.map(({ scope, cacheId }) =>
          cacheId === '' ? { scope } : { scope, cacheId },
        ) as ServiceTokenCreate['accesses'],
      };
      try {
        const { row, token } = await createServiceToken(db, principal, input);
        reply.flash({
          message: `Service token “${row.name}” created. Its id is ${row.id}: send Authorization: ${row.id}:<token>, with the token below.`,
          secret: token,
        });
        return reply.redirect(pathOf(request.params.slug), 303);
      } catch (error) {
        const { status, errors, message } = formRefusal(error);
        const fields = renamed(errors, { name: 'tokenName', expiresAt: 'tokenExpiresOn' });
        return showPage(request, reply, user, {
          status,
          serviceToken: { values, errors: fields, message },
        });
      }
    },
  );

  app.post<{ Params: CredentialParams }>(
    '/w/:slug/settings/credentials/service-tokens/:id/delete',
    html_,
    async (request, reply) => {
      const user = requireUser(request, reply);
      if (!user) return reply;
      const { principal } = await consolePrincipal(db, user, request.params.slug);
      await deleteServiceToken(db, principal, request.params.id);
      reply.flash({ message: 'Service token deleted. It no longer works.' });
      return reply.redirect(pathOf(request.params.slug), 303);
    },
  );
}
