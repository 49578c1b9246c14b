// Hands the engine's paths to oidc-provider untouched: Fastify neither parses their bodies nor
// adds headers, and our interaction pages under /oauth2/interaction win over the wildcard.
import type { FastifyInstance } from 'fastify';
import type Provider from 'oidc-provider';

const ENGINE_PATHS = [
  '/oauth2/*',
  '/.well-known/oauth-authorization-server',
  '/.well-known/openid-configuration',
];

export function mountProvider(app: FastifyInstance, provider: Provider) {
  const callback = provider.callback();
  for (const url of ENGINE_PATHS) {
    app.route({
      method: ['GET', 'HEAD', 'POST', 'OPTIONS'],
      url,
      exposeHeadRoute: false,
      onRequest: (request, reply, _done) => {
        reply.hijack();
        callback(request.raw, reply.raw);
      },
      handler: async () => undefined,
    });
  }
}
