// The device flow (RFC 8628) for headless tools: the tool shows a code, the user approves it in a
// browser (code page, confirmation, our consent with the workspace picker) and the tool's poll
// turns into workspace-bound tokens.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { openTestStore } from '../helpers/stores.ts';
import { startListeningApp } from '../helpers/listening-app.ts';
import { CookieFetch } from '../helpers/browserless.ts';
import { USER_CODE_ATTEMPTS } from '../../src/oauth/user-code-throttle.ts';
import {
  apiStatus,
  discover,
  formOf,
  insecure,
  personalWorkspaceOf,
  registerPartner,
  signUpBrowser,
  submitConsent,
  textOf,
  tokenOutcome,
  userIdOf,
  type RegisteredPartner,
} from '../helpers/oauth-flow.ts';

describe('device flow', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let user: CookieFetch;
  let workspaceId: string;
  let cli: RegisteredPartner;
  const client = () => ({ client_id: cli.clientId });

  beforeAll(async () => {
    store = await openTestStore('postgres');
    ({ app, url } = await startListeningApp(store));
    await signUpBrowser(url, 'owner@partner.example');
    cli = await registerPartner(store.db, await userIdOf(store.db, 'owner@partner.example'), {
      name: 'Partner CLI',
      clientType: 'public',
      scopes: ['caches:read', 'offline_access'],
      redirectUris: ['http://127.0.0.1/callback'],
    });
    user = await signUpBrowser(url, 'ada@example.com');
    workspaceId = (await personalWorkspaceOf(store.db, 'ada@example.com')).id;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  async function startDevice(scope: string) {
    const as = await discover(url);
    const response = await oauth.deviceAuthorizationRequest(
      as,
      client(),
      oauth.None(),
      { scope },
      insecure,
    );
    return { as, device: await oauth.processDeviceAuthorizationResponse(as, client(), response) };
  }

  async function poll(as: oauth.AuthorizationServer, deviceCode: string) {
    return oauth.deviceCodeGrantRequest(as, client(), oauth.None(), deviceCode, insecure);
  }

  /** Opens the verification link and submits the code form: returns the confirmation page. */
  async function openConfirmation(verificationUri: string): Promise<string> {
    const opened = await user.request(verificationUri);
    expect(opened.status).toBe(200);
    const codeForm = formOf(await opened.text());
    expect(Object.keys(codeForm.fields).sort()).toEqual(['user_code', 'xsrf']);
    const confirm = await user.postForm(new URL(codeForm.action, url).toString(), codeForm.fields);
    expect(confirm.status).toBe(200);
    return confirm.text();
  }

  it('approves a device in the browser and the poll returns workspace-bound tokens', async () => {
    const { as, device } = await startDevice('caches:read offline_access');
    expect(device.verification_uri).toBe(`${url}/oauth2/device`);
    expect(device.user_code).toMatch(/^[A-Z]{4}-[A-Z]{4}$/);
    expect(await tokenOutcome(poll(as, device.device_code))).toBe('authorization_pending');

    const confirmPage = await openConfirmation(device.verification_uri_complete!);
    expect(textOf(confirmPage)).toContain('Confirm the device');
    expect(textOf(confirmPage)).toContain('Partner CLI');
    expect(textOf(confirmPage)).toContain(device.user_code);
    const confirmForm = formOf(confirmPage, 'op.deviceConfirmForm');
    expect(confirmForm.fields).not.toHaveProperty('abort');
    const confirmed = await user.postForm(
      new URL(confirmForm.action, url).toString(),
      confirmForm.fields,
    );
    expect(confirmed.status).toBeGreaterThanOrEqual(300);
    expect(confirmed.status).toBeLessThan(400);

    const consent = await user.follow(
      new URL(confirmed.headers.get('location')!, url).toString(),
      `${url}/`,
    );
    const consentPage = await consent.response.text();
    expect(textOf(consentPage)).toContain('Partner CLI wants to access your Edgegate workspace');
    expect(await tokenOutcome(poll(as, device.device_code))).toBe('authorization_pending');

    const decided = await submitConsent(url, user, consentPage, { workspace: workspaceId });
    expect(decided.status).toBe(303);
    const done = await user.follow(
      new URL(decided.headers.get('location')!, url).toString(),
      `${url}/`,
    );
    expect(done.response.status).toBe(200);
    expect(textOf(await done.response.text())).toContain('Device connected');

    const tokens = await oauth.processDeviceCodeResponse(
      as,
      client(),
      await poll(as, device.device_code),
    );
    expect(tokens.workspace_id).toBe(workspaceId);
    expect(tokens.scope).toBe('caches:read');
    expect(tokens.refresh_token).toBeTruthy();
    expect(await apiStatus(url, tokens.access_token)).toBe(200);

    expect(await tokenOutcome(poll(as, device.device_code))).toBe('invalid_grant');
  });

  /** Opens the code, then aborts on the confirmation page: returns the page the user sees. */
  async function abortInBrowser(verificationUri: string): Promise<string> {
    const confirmForm = formOf(await openConfirmation(verificationUri), 'op.deviceConfirmForm');
    const { confirm: _confirm, ...fields } = confirmForm.fields;
    const aborted = await user.postForm(new URL(confirmForm.action, url).toString(), {
      ...fields,
      abort: 'yes',
    });
    expect(aborted.status).toBe(200);
    return aborted.text();
  }

  /** Confirms the code, then presses Deny on our consent page: returns the page the user sees. */
  async function denyInBrowser(verificationUri: string): Promise<string> {
    const confirmForm = formOf(await openConfirmation(verificationUri), 'op.deviceConfirmForm');
    const confirmed = await user.postForm(
      new URL(confirmForm.action, url).toString(),
      confirmForm.fields,
    );
    const consent = await user.follow(
      new URL(confirmed.headers.get('location')!, url).toString(),
      `${url}/`,
    );
    const denied = await submitConsent(url, user, await consent.response.text(), {
      decision: 'deny',
    });
    expect(denied.status).toBe(303);
    const shown = await user.follow(
      new URL(denied.headers.get('location')!, url).toString(),
      `${url}/`,
    );
    expect(shown.response.status).toBe(200);
    return shown.response.text();
  }

  it.each([
    ['aborting on the confirmation page', abortInBrowser],
    ['denying on the consent page', denyInBrowser],
  ])('tells the device access_denied after %s', async (_, refuse) => {
    const { as, device } = await startDevice('caches:read');
    await refuse(device.verification_uri_complete!);
    expect(await tokenOutcome(poll(as, device.device_code))).toBe('access_denied');
  });

  it.each([
    ['aborting on the confirmation page', abortInBrowser],
    ['denying on the consent page', denyInBrowser],
  ])('tells the user the device was not connected after %s', async (_, refuse) => {
    const { device } = await startDevice('caches:read');
    const page = await refuse(device.verification_uri_complete!);
    expect(textOf(page)).not.toMatch(/went wrong|not right|try again/i);
    expect(textOf(page)).toMatch(/not connected/i);
  });

  it('says so when the code typed in is wrong', async () => {
    const page = await user.request(`${url}/oauth2/device`);
    const form = formOf(await page.text(), 'op.deviceInputForm');
    const wrong = await user.postForm(new URL(form.action, url).toString(), {
      ...form.fields,
      user_code: 'BCDF-GHJK',
    });
    expect(textOf(await wrong.text())).toContain('That code is not right.');
  });
});

describe('device code page under guessing', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;

  beforeAll(async () => {
    store = await openTestStore('postgres');
    ({ app, url } = await startListeningApp(store));
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it(`refuses more than ${USER_CODE_ATTEMPTS} codes from one address, with 429 and a page that says when to retry`, async () => {
    // Each guess starts a fresh browser session (its own cookie jar): only the address is shared.
    const guess = async () => {
      const guesser = new CookieFetch();
      const page = await guesser.request(`${url}/oauth2/device`);
      const form = formOf(await page.text(), 'op.deviceInputForm');
      return guesser.postForm(new URL(form.action, url).toString(), {
        ...form.fields,
        user_code: 'BCDF-GHJK',
      });
    };
    for (let i = 0; i < USER_CODE_ATTEMPTS; i++) {
      const wrong = await guess();
      expect(textOf(await wrong.text())).toContain('That code is not right.');
    }

    const refused = await guess();
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused.headers.get('content-type')).toMatch(/^text\/html/);
    expect(textOf(await refused.text())).toMatch(/Too many codes were entered .* Wait 10 minutes/);
  });
});
