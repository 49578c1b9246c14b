// GET and POST /login, POST /logout.
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/store.ts';
import { html } from '../../views/html.ts';
import { csrfField, errorSummary, field } from '../../views/layout.ts';
import { Problem } from '../../problem.ts';
import { logIn } from '../../services/accounts.ts';
import type { LoginThrottle } from '../../services/login-throttle.ts';
import { createSession, endSession } from '../../services/sessions.ts';
import { formValue, safeNext, sendPage } from './render.ts';

function loginForm(csrf: string, values: { email?: string; next?: string }, message?: string) {
  return html`<h1>Log in to Edgegate</h1>
    ${errorSummary(message)}
    <form method="post" action="/login" novalidate>
      ${csrfField(csrf)}
      <input type="hidden" name="next" value="${values.next ?? ''}" />
      ${field({ name: 'email', label: 'Email', type: 'email', value: values.email, autocomplete: 'username' })}
      ${field({ name: 'password', label: 'Password', type: 'password', autocomplete: 'current-password' })}
      <button type="submit">Log in</button>
    </form>
    <p>
      New here?
      <a href="/signup${values.next ? `?next=${encodeURIComponent(values.next)}` : ''}"
        >Create an account</a
      >.
    </p>`;
}

export function registerLoginRoutes(app: FastifyInstance, db: Db, throttle: LoginThrottle) {
  app.get('/login', { config: { html: true } }, async (request, reply) => {
    const next = (request.query as { next?: string }).next;
    if (request.user) return reply.redirect(safeNext(next, '/workspaces'), 303);
    return sendPage(request, reply, {
      title: 'Log in',
      body: loginForm(request.csrfToken(), { next }),
    });
  });

  app.post('/login', { config: { html: true } }, async (request, reply) => {
    const values = {
      email: formValue(request.body, 'email'),
      next: formValue(request.body, 'next'),
    };
    try {
      const user = await logIn(db, throttle, {
        email: values.email,
        password: formValue(request.body, 'password'),
        ip: request.ip,
      });
      const token = await createSession(db, user.id, {
        ip: request.ip,
        userAgent: request.headers['user-agent'] ?? null,
      });
      reply.startSession(token);
      return reply.redirect(safeNext(values.next, '/workspaces'), 303);
    } catch (error) {
      if (!(error instanceof Problem) || error.status >= 500) throw error;
      reply.headers(error.headers);
      return sendPage(request, reply, {
        title: 'Log in',
        status: error.status,
        body: loginForm(request.csrfToken(), values, error.message),
      });
    }
  });

  app.post('/logout', { config: { html: true } }, async (request, reply) => {
    if (request.sessionToken) await endSession(db, request.sessionToken);
    reply.endSession();
    return reply.redirect('/login', 303);
  });
}
