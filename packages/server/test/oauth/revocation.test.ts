// Taking access back: from the account's Authorized apps page (one app or all) or by the app
// itself (RFC 7009); every token of the grant stops at once, and the workspace's log shows it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import * as oauth from 'oauth4webapi';
import { SCOPE_DESCRIPTIONS } from '@edgegate/contract';
import type { Store } from '../../src/db/store.ts';
import { sha256 } from '../../src/services/crypto.ts';
import { openTestStore } from '../helpers/stores.ts';
import { startListeningApp } from '../helpers/listening-app.ts';
import type { CookieFetch } from '../helpers/browserless.ts';
import {
  apiStatus,
  clientAuthOf,
  csrfIn,
  elementsOf,
  discover,
  insecure,
  introspect,
  obtainTokens,
  personalWorkspaceOf,
  refreshRequest,
  registerPartner,
  revocationReasons,
  signUpBrowser,
  startAuthorization,
  textOf,
  tokenOutcome,
  userIdOf,
  type RegisteredPartner,
} from '../helpers/oauth-flow.ts';

const PAGE = '/settings/account/authorized-apps';

describe('revocation', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let partner: RegisteredPartner;
  let second: RegisteredPartner;
  let owner: CookieFetch;
  let ownerId: string;

  beforeAll(async () => {
    store = await openTestStore('postgres');
    ({ app, url } = await startListeningApp(store));
    owner = await signUpBrowser(url, 'owner@partner.example');
    ownerId = await userIdOf(store.db, 'owner@partner.example');
    partner = await registerPartner(store.db, ownerId, {
      scopes: ['caches:read', 'metrics:read'],
      redirectUris: ['https://partner.example/callback'],
    });
    second = await registerPartner(store.db, ownerId, {
      name: 'Second Partner',
      redirectUris: ['https://second.example/callback'],
    });
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  /** A new user who has connected `apps` to their personal workspace. */
  async function connectedUser(email: string, apps: RegisteredPartner[] = [partner]) {
    const user = await signUpBrowser(url, email);
    const workspace = await personalWorkspaceOf(store.db, email);
    const tokens = [];
    for (const connected of apps) {
      tokens.push(
        await obtainTokens(url, user, connected, {
          scope: 'caches:read',
          workspaceId: workspace.id,
        }),
      );
    }
    return { user, workspace, tokens };
  }

  function rowsOf(page: string): string[] {
    return [...page.matchAll(/<tr\b[\s\S]*?<\/tr>/g)].map((m) => m[0]);
  }

  async function grantIdOf(accessToken: string): Promise<string> {
    const row = await store.db
      .selectFrom('oauth_tokens')
      .select('grant_id')
      .where('id_hash', '=', sha256(accessToken))
      .executeTakeFirstOrThrow();
    return row.grant_id!;
  }

  async function expectDead(
    app: RegisteredPartner,
    tokens: { access_token: string; refresh_token?: string },
  ) {
    expect(await apiStatus(url, tokens.access_token)).toBe(401);
    expect(await introspect(url, app, tokens.access_token)).toEqual({ active: false });
    expect(await tokenOutcome(refreshRequest(url, app, tokens.refresh_token!))).toBe(
      'invalid_grant',
    );
  }

  it('lists each authorized app with its workspace, scopes and when it was granted', async () => {
    const { user, workspace } = await connectedUser('list@example.com');
    const response = await user.request(`${url}${PAGE}`);
    expect(response.status).toBe(200);
    const page = await response.text();
    const row = rowsOf(page).find((r) => textOf(r).includes('Partner Analytics'));
    expect(row).toBeDefined();
    expect(textOf(row!)).toContain(workspace.name);
    expect(elementsOf(row!, 'a').map((a) => a.href)).toContain(`/w/${workspace.slug}`);
    expect(textOf(row!)).toContain(SCOPE_DESCRIPTIONS['caches:read']);
    const granted = elementsOf(row!, 'time')[0]?.datetime;
    expect(Math.abs(Date.parse(granted!) - Date.now())).toBeLessThan(60_000);
    expect(elementsOf(row!, 'form').map((f) => f.action)).toEqual([
      expect.stringMatching(/^\/settings\/account\/authorized-apps\/[^/]+\/revoke$/),
    ]);
  });

  it('Revoke stops the app’s tokens on the very next request', async () => {
    const { user, tokens } = await connectedUser('revoke@example.com');
    const [connected] = tokens;
    expect(await apiStatus(url, connected!.access_token)).toBe(200);
    const grantId = await grantIdOf(connected!.access_token);

    const page = await (await user.request(`${url}${PAGE}`)).text();
    expect(elementsOf(page, 'form').map((f) => f.action)).toContain(`${PAGE}/${grantId}/revoke`);
    const asked = await user.postForm(`${url}${PAGE}/${grantId}/revoke`, { _csrf: csrfIn(page) });
    expect(asked.status).toBe(200);
    expect(await apiStatus(url, connected!.access_token)).toBe(200);
    const question = await asked.text();
    expect(textOf(question)).toContain('Revoke Partner Analytics?');
    const revoked = await user.postForm(`${url}${PAGE}/${grantId}/revoke`, {
      _csrf: csrfIn(question),
      confirm: 'yes',
    });
    expect(revoked.status).toBe(303);

    await expectDead(partner, connected!);
    const after = await (await user.request(`${url}${PAGE}`)).text();
    expect(textOf(after)).toContain('You have not authorized any apps.');
  });

  it('Revoke without the page’s CSRF token changes nothing', async () => {
    const { user, tokens } = await connectedUser('forged@example.com');
    const grantId = await grantIdOf(tokens[0]!.access_token);
    const forged = await user.postForm(`${url}${PAGE}/${grantId}/revoke`, { confirm: 'yes' });
    expect(forged.status).toBe(403);
    expect(await apiStatus(url, tokens[0]!.access_token)).toBe(200);
  });

  it("cannot revoke another user's grant", async () => {
    const victim = await connectedUser('victim@example.com');
    const grantId = await grantIdOf(victim.tokens[0]!.access_token);
    const { user } = await connectedUser('intruder@example.com');
    const page = await (await user.request(`${url}${PAGE}`)).text();
    for (const confirm of ['', 'yes']) {
      const attempt = await user.postForm(`${url}${PAGE}/${grantId}/revoke`, {
        _csrf: csrfIn(page),
        confirm,
      });
      expect(attempt.status).toBe(404);
    }
    expect(await apiStatus(url, victim.tokens[0]!.access_token)).toBe(200);
  });

  it('Revoke all revokes every grant of the user and only theirs', async () => {
    const bystander = await connectedUser('bystander@example.com');
    const { user, tokens } = await connectedUser('all@example.com', [partner, second]);
    const page = await (await user.request(`${url}${PAGE}`)).text();
    expect(textOf(page)).toContain('Second Partner');
    const asked = await user.postForm(`${url}${PAGE}/revoke-all`, { _csrf: csrfIn(page) });
    expect(asked.status).toBe(200);
    expect(textOf(await asked.text())).toContain('All 2 apps you authorized will lose access');
    expect(await apiStatus(url, tokens[0]!.access_token)).toBe(200);
    const revoked = await user.postForm(`${url}${PAGE}/revoke-all`, {
      _csrf: csrfIn(page),
      confirm: 'yes',
    });
    expect(revoked.status).toBe(303);

    await expectDead(partner, tokens[0]!);
    await expectDead(second, tokens[1]!);
    expect(await apiStatus(url, bystander.tokens[0]!.access_token)).toBe(200);
  });

  it('revoking a refresh token at /oauth2/revoke (RFC 7009) kills its whole family', async () => {
    const { tokens } = await connectedUser('rfc7009@example.com');
    const first = tokens[0]!;
    const as = await discover(url);
    const client = { client_id: partner.clientId };
    const rotated = await oauth.processRefreshTokenResponse(
      as,
      client,
      await refreshRequest(url, partner, first.refresh_token!),
    );
    expect(await apiStatus(url, rotated.access_token)).toBe(200);

    const response = await oauth.revocationRequest(
      as,
      client,
      clientAuthOf(partner),
      rotated.refresh_token!,
      insecure,
    );
    await oauth.processRevocationResponse(response);

    await expectDead(partner, rotated);
    expect(await apiStatus(url, first.access_token)).toBe(401);
  });

  it("records consent and revocation in the workspace's activity for its admins", async () => {
    const { user, workspace, tokens } = await connectedUser('audit@example.com');
    const grantId = await grantIdOf(tokens[0]!.access_token);
    const page = await (await user.request(`${url}${PAGE}`)).text();
    await user.postForm(`${url}${PAGE}/${grantId}/revoke`, { _csrf: csrfIn(page), confirm: 'yes' });

    const activity = await user.request(`${url}/w/${workspace.slug}`);
    expect(activity.status).toBe(200);
    const text = textOf(await activity.text());
    expect(text).toContain('grant.consented');
    expect(text).toContain('grant.revoked');
    expect(await revocationReasons(store.db, workspace.id)).toEqual(['revoked_by_user']);
  });

  /** Revokes `token` at /oauth2/revoke as the app itself would (RFC 7009). */
  async function revokeAtEndpoint(token: string) {
    const as = await discover(url);
    const response = await oauth.revocationRequest(
      as,
      { client_id: partner.clientId },
      clientAuthOf(partner),
      token,
      insecure,
    );
    await oauth.processRevocationResponse(response);
  }

  it("records an app's own revocation (RFC 7009) in the workspace's activity", async () => {
    const { user, workspace, tokens } = await connectedUser('rfc7009-audit@example.com');
    await revokeAtEndpoint(tokens[0]!.refresh_token!);

    expect(await revocationReasons(store.db, workspace.id)).toEqual(['revoked_by_app']);
    const activity = textOf(await (await user.request(`${url}/w/${workspace.slug}`)).text());
    expect(activity).toContain('grant.revoked');
  });

  it('revoking an access token at /oauth2/revoke ends the whole authorization', async () => {
    const { user, workspace, tokens } = await connectedUser('rfc7009-at@example.com');
    await revokeAtEndpoint(tokens[0]!.access_token);

    await expectDead(partner, tokens[0]!);
    const listed = await (await user.request(`${url}${PAGE}`)).text();
    expect(textOf(listed)).toContain('You have not authorized any apps.');
    expect(await revocationReasons(store.db, workspace.id)).toEqual(['revoked_by_app']);
  });

  it('deleting an app revokes every authorization of it, each in its workspace’s activity', async () => {
    const doomed = await registerPartner(store.db, ownerId, {
      name: 'Doomed Partner',
      redirectUris: ['https://doomed.example/callback'],
    });
    // Two authorizations of the app, into two workspaces.
    const connected = [
      await connectedUser('doomed@example.com', [doomed]),
      await connectedUser('doomed-too@example.com', [doomed]),
    ];
    const grants = await Promise.all(
      connected.map(({ tokens }) => grantIdOf(tokens[0]!.access_token)),
    );
    const appPage = await (await owner.request(`${url}/apps/${doomed.appId}`)).text();
    const deleted = await owner.postForm(`${url}/apps/${doomed.appId}/delete`, {
      _csrf: csrfIn(appPage),
    });
    expect(deleted.status).toBe(303);

    for (const [i, { user, workspace, tokens }] of connected.entries()) {
      expect(await apiStatus(url, tokens[0]!.access_token)).toBe(401);
      // Each workspace's log holds the revocation of its own grant, and not the other's.
      const revoked = await store.db
        .selectFrom('audit_events')
        .select(['target', 'data'])
        .where('workspace_id', '=', workspace.id)
        .where('action', '=', 'grant.revoked')
        .execute();
      expect(revoked).toEqual([
        { target: grants[i], data: expect.objectContaining({ reason: 'app_deleted' }) },
      ]);
      // And the workspace's Recent activity shows it once.
      const page = await (await user.request(`${url}/w/${workspace.slug}`)).text();
      const activity = /<section aria-labelledby="activity-heading">[\s\S]*?<\/section>/.exec(
        page,
      )?.[0];
      expect(activity).toBeDefined();
      expect(rowsOf(activity!).filter((row) => textOf(row).includes('grant.revoked'))).toHaveLength(
        1,
      );
    }
  });

  it('shows the way to Authorized apps in the top bar and on the consent page', async () => {
    const user = await signUpBrowser(url, 'wayfinder@example.com');
    const home = await (await user.request(`${url}/workspaces`)).text();
    const nav = /<nav aria-label="Account">[\s\S]*?<\/nav>/.exec(home)?.[0] ?? '';
    expect(elementsOf(nav, 'a').map((a) => a.href)).toContain(PAGE);

    const { page } = await startAuthorization(url, user, partner, { scope: 'caches:read' });
    const link = elementsOf(page, 'a').find((a) => a.href === PAGE);
    expect(link).toBeDefined();
    expect(textOf(page)).toContain('Settings → Authorized apps');
  });
});
