// Pages the engine renders itself (error page, device-flow code entry), in the console's look.
import type { KoaContextWithOIDC } from 'oidc-provider';
import { html, SafeHtml } from '../views/html.ts';
import { page } from '../views/layout.ts';
import { consoleCsp } from '../plugins/console-session.ts';

function send(ctx: KoaContextWithOIDC, title: string, body: SafeHtml) {
  ctx.type = 'html';
  ctx.set('content-security-policy', consoleCsp());
  ctx.set('cache-control', 'no-store');
  ctx.body = page({ title, body });
}

const ERROR_TEXT: Record<string, string> = {
  invalid_redirect_uri:
    'The app sent you here with a return address it has not registered, so we will not send you back to it.',
  invalid_client: 'The app that sent you here is not registered with Edgegate.',
  invalid_request: 'The app that sent you here made a request Edgegate cannot accept.',
  access_denied: 'Access was denied.',
};

export async function renderError(
  ctx: KoaContextWithOIDC,
  out: { error: string; error_description?: string },
): Promise<void> {
  send(
    ctx,
    'Cannot continue',
    html`<h1>Cannot continue</h1>
      <p>${ERROR_TEXT[out.error] ?? 'Something about this authorization request is wrong.'}</p>
      <p class="muted">
        Error
        <code>${out.error}</code>${out.error_description ? html`: ${out.error_description}` : ''}
      </p>
      <p>Go back to the app and try again, or contact its developer.</p>`,
  );
}

export async function userCodeInputSource(
  ctx: KoaContextWithOIDC,
  form: string,
  out: { error?: string } | undefined,
  err?: { userCode?: string; name?: string },
): Promise<void> {
  send(
    ctx,
    'Connect a device',
    html`<h1>Connect a device</h1>
      ${deviceMessage(out, err)}
      <p>Enter the code shown by the app on your device or terminal.</p>
      ${new SafeHtml(form.replace('name="user_code"', 'name="user_code" aria-label="Code from your device"'))}
      <button type="submit" form="op.deviceInputForm">Continue</button>`,
  );
}

/** Why the code page is shown again: a refusal is news, not an error of the person's typing. */
function deviceMessage(
  out: { error?: string } | undefined,
  err: { userCode?: string; name?: string } | undefined,
) {
  if (!err) return '';
  if (err.name === 'AbortedError' || out?.error === 'access_denied') {
    return html`<div class="flash" role="status">
      <p>The device was not connected. You can close this window, or enter another code.</p>
    </div>`;
  }
  const text =
    err.userCode || err.name === 'NoCodeError'
      ? 'That code is not right. Check the code shown on your device and try again.'
      : 'Something went wrong with that code. Try again.';
  return html`<div class="error-summary" role="alert"><p>${text}</p></div>`;
}

export async function userCodeConfirmSource(
  ctx: KoaContextWithOIDC,
  form: string,
  client: { clientName?: string; clientId: string },
  _deviceInfo: unknown,
  userCode: string,
): Promise<void> {
  send(
    ctx,
    'Confirm the device',
    html`<h1>Confirm the device</h1>
      <p>
        <strong>${client.clientName ?? client.clientId}</strong> asks to connect to your Edgegate
        account.
      </p>
      <p>Your device should show this code: <code class="secret">${userCode}</code></p>
      <p>If it does not, or you did not start this, abort.</p>
      ${new SafeHtml(form)}
      <button type="submit" form="op.deviceConfirmForm">Continue</button>
      <button type="submit" form="op.deviceConfirmForm" value="yes" name="abort" class="secondary">
        Abort
      </button>`,
  );
}

export async function deviceSuccessSource(ctx: KoaContextWithOIDC): Promise<void> {
  const name = ctx.oidc.client?.clientName;
  send(
    ctx,
    'Device connected',
    html`<h1>Device connected</h1>
      <p>
        ${name ?? 'The app'} is now connected. You can close this window and go back to your device.
      </p>`,
  );
}

/** Too many codes typed from one address: a pause, said plainly. */
export function tooManyCodeAttempts(ctx: KoaContextWithOIDC, retryAfterSeconds: number): void {
  const minutes = Math.max(1, Math.ceil(retryAfterSeconds / 60));
  send(
    ctx,
    'Too many attempts',
    html`<h1>Too many attempts</h1>
      <p>
        Too many codes were entered from your network. Wait ${minutes}
        minute${minutes === 1 ? '' : 's'}, then enter the code shown on your device again.
      </p>`,
  );
  ctx.status = 429;
  ctx.set('retry-after', String(retryAfterSeconds));
}
