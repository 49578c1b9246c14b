// GET / and the console stylesheet.
import type { FastifyInstance } from 'fastify';
import { CONSOLE_CSS } from '../../views/layout.ts';

export function registerHomeRoutes(app: FastifyInstance) {
  app.get('/', { config: { html: true } }, async (request, reply) =>
    reply.redirect(request.user ? '/workspaces' : '/login', 303),
  );
  app.get('/assets/console.css', async (_request, reply) =>
    reply
      .type('text/css; charset=utf-8')
      .header('cache-control', 'public, max-age=3600')
      .send(CONSOLE_CSS),
  );
}
