// GET /, the console stylesheet and its icon.
import type { FastifyInstance } from 'fastify';
import { CONSOLE_CSS, CONSOLE_ICON } from '../../views/layout.ts';

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
  // Browsers ask for an icon on every page; without one each page logs a 404 in the console.
  app.get('/assets/icon.svg', async (_request, reply) =>
    reply.type('image/svg+xml').header('cache-control', 'public, max-age=86400').send(CONSOLE_ICON),
  );
}
