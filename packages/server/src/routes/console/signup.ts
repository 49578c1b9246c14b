// GET and POST /signup: create an account (and its personal workspace), then sign in.
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/store.ts';
import { html } from '../../views/html.ts';
import { csrfField, errorSummary, field, type FieldErrors } from '../../views/layout.ts';
import { Problem } from '../../problem.ts';
import { signUp } from '../../services/accounts.ts';
import { createSession } from '../../services/sessions.ts';
import { fieldErrors, formValue, safeNext, sendPage } from './render.ts';

function signupForm(
  csrf: string,
  values: { email?: string; name?: string; next?: string },
  errors: FieldErrors = {},
  message?: string,
) {
  return html`<h1>Create your Edgegate account</h1>
    ${errorSummary(message, errors)}
    <form method="post" action="/signup" novalidate>
      ${csrfField(csrf)}
      <input type="hidden" name="next" value="${values.next ?? ''}" />
      ${field({ name: 'name', label: 'Name', value: values.name, error: errors.name, autocomplete: 'name', required: false })}
      ${field({ name: 'email', label: 'Email', type: 'email', value: values.email, error: errors.email, autocomplete: 'email' })}
      ${field({ name: 'password', label: 'Password', type: 'password', error: errors.password, autocomplete: 'new-password', hint: 'At least 10 characters.' })}
      <button type="submit">Sign up</button>
    </form>
    <p>Already have an account? <a href="/login">Log in</a>.</p>`;
}

export function registerSignupRoutes(app: FastifyInstance, db: Db) {
  app.get('/signup', { config: { html: true } }, async (request, reply) => {
    if (request.user) return reply.redirect('/workspaces', 303);
    const next = (request.query as { next?: string }).next;
    return sendPage(request, reply, {
      title: 'Sign up',
      body: signupForm(request.csrfToken(), { next }),
    });
  });

  app.post('/signup', { config: { html: true } }, async (request, reply) => {
    const values = {
      email: formValue(request.body, 'email'),
      name: formValue(request.body, 'name'),
      next: formValue(request.body, 'next'),
    };
    try {
      const { user, personalWorkspace } = await signUp(db, {
        ...values,
        password: formValue(request.body, 'password'),
      });
      const token = await createSession(db, user.id, {
        ip: request.ip,
        userAgent: request.headers['user-agent'] ?? null,
      });
      reply.startSession(token);
      return reply.redirect(safeNext(values.next, `/w/${personalWorkspace.slug}`), 303);
    } catch (error) {
      if (!(error instanceof Problem) || error.status >= 500) throw error;
      return sendPage(request, reply, {
        title: 'Sign up',
        status: error.status,
        body: signupForm(
          request.csrfToken(),
          values,
          fieldErrors(error),
          error.status === 409 ? error.message : undefined,
        ),
      });
    }
  });
}
