// A grant is bound to the one workspace the user chose: tokens and introspection name it, and
// the grant loses its power when the user leaves that workspace.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../src/db/store.ts';
import { insertMembership } from '../../src/db/queries/workspaces.ts';
import { createWorkspace } from '../../src/services/workspaces.ts';
import { openTestStore } from '../helpers/stores.ts';
import { startListeningApp } from '../helpers/listening-app.ts';
import type { CookieFetch } from '../helpers/browserless.ts';
import {
  apiStatus,
  csrfIn,
  introspect,
  obtainTokens,
  personalWorkspaceOf,
  refreshRequest,
  registerPartner,
  revocationReasons,
  signUpBrowser,
  tokenOutcome,
  userIdOf,
  type RegisteredPartner,
} from '../helpers/oauth-flow.ts';

describe('workspace binding', () => {
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let user: CookieFetch;
  let userId: string;
  let leadId: string;
  let personalId: string;
  let partner: RegisteredPartner;
  let other: RegisteredPartner;
  let cli: RegisteredPartner;

  beforeAll(async () => {
    store = await openTestStore('postgres');
    ({ app, url } = await startListeningApp(store));
    await signUpBrowser(url, 'owner@partner.example');
    const ownerId = await userIdOf(store.db, 'owner@partner.example');
    partner = await registerPartner(store.db, ownerId, {
      scopes: ['caches:read', 'metrics:read'],
      redirectUris: ['https://partner.example/callback'],
    });
    other = await registerPartner(store.db, ownerId, {
      name: 'Other Partner',
      redirectUris: ['https://other.example/callback'],
    });
    cli = await registerPartner(store.db, ownerId, {
      name: 'Partner CLI',
      clientType: 'public',
      scopes: ['caches:read', 'offline_access'],
      redirectUris: ['http://127.0.0.1/callback'],
    });
    await signUpBrowser(url, 'lead@example.com');
    leadId = await userIdOf(store.db, 'lead@example.com');
    user = await signUpBrowser(url, 'ada@example.com');
    userId = await userIdOf(store.db, 'ada@example.com');
    personalId = (await personalWorkspaceOf(store.db, 'ada@example.com')).id;
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  /** A workspace run by someone else that the user is a plain member of. */
  async function sharedWorkspace(name: string) {
    const workspace = await createWorkspace(store.db, leadId, { name });
    await insertMembership(store.db, workspace.id, userId, 'member');
    return workspace;
  }

  it('returns the chosen workspace, not the personal one, in the token response and the API', async () => {
    const team = await sharedWorkspace('Acme Team');
    const tokens = await obtainTokens(url, user, partner, {
      scope: 'caches:read metrics:read',
      workspaceId: team.id,
    });
    expect(tokens.workspace_id).toBe(team.id);
    expect(tokens.workspace_id).not.toBe(personalId);

    const me = await fetch(`${url}/v1/workspace`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    expect(me.status).toBe(200);
    expect((await me.json()).data).toMatchObject({ id: team.id, slug: team.slug });
  });

  it('answers introspection by its own client with the workspace, scope and client', async () => {
    const tokens = await obtainTokens(url, user, partner, {
      scope: 'caches:read metrics:read',
      workspaceId: personalId,
    });
    const seen = await introspect(url, partner, tokens.access_token);
    expect(seen).toMatchObject({
      active: true,
      workspace_id: personalId,
      scope: 'caches:read metrics:read',
      client_id: partner.clientId,
      sub: userId,
    });
  });

  it('answers introspection of a live refresh token with its workspace', async () => {
    const tokens = await obtainTokens(url, user, partner, {
      scope: 'caches:read',
      workspaceId: personalId,
    });
    expect(await introspect(url, partner, tokens.refresh_token!)).toMatchObject({
      active: true,
      workspace_id: personalId,
      client_id: partner.clientId,
    });
  });

  it("lets no other client introspect the app's tokens", async () => {
    const tokens = await obtainTokens(url, user, partner, {
      scope: 'caches:read',
      workspaceId: personalId,
    });
    expect(await introspect(url, other, tokens.access_token)).toEqual({ active: false });
    expect(await introspect(url, other, tokens.refresh_token!)).toEqual({ active: false });
  });

  it('answers introspection by a public client with active:false, even for its own tokens', async () => {
    const tokens = await obtainTokens(url, user, cli, {
      scope: 'caches:read offline_access',
      workspaceId: personalId,
    });
    expect(await apiStatus(url, tokens.access_token)).toBe(200);
    expect(await introspect(url, cli, tokens.access_token)).toEqual({ active: false });
    expect(await introspect(url, cli, tokens.refresh_token!)).toEqual({ active: false });
  });

  it('stops the tokens when the user leaves the workspace', async () => {
    const team = await sharedWorkspace('Leaving Team');
    const tokens = await obtainTokens(url, user, partner, {
      scope: 'caches:read',
      workspaceId: team.id,
    });
    expect(await apiStatus(url, tokens.access_token)).toBe(200);

    const page = await user.request(`${url}/w/${team.slug}`);
    const left = await user.postForm(`${url}/w/${team.slug}/leave`, {
      _csrf: csrfIn(await page.text()),
    });
    expect(left.status).toBe(303);
    expect(left.headers.get('location')).toBe('/workspaces');

    expect(await revocationReasons(store.db, team.id)).toEqual(['member_removed']);
    expect(await apiStatus(url, tokens.access_token)).toBe(401);
    expect(await introspect(url, partner, tokens.access_token)).toEqual({ active: false });
    expect(await tokenOutcome(refreshRequest(url, partner, tokens.refresh_token!))).toBe(
      'invalid_grant',
    );
  });

  it('stops the tokens when the membership is removed', async () => {
    const team = await sharedWorkspace('Removed Team');
    const tokens = await obtainTokens(url, user, partner, {
      scope: 'caches:read',
      workspaceId: team.id,
    });
    await store.db
      .deleteFrom('memberships')
      .where('workspace_id', '=', team.id)
      .where('user_id', '=', userId)
      .execute();

    expect(await apiStatus(url, tokens.access_token)).toBe(401);
    expect(await introspect(url, partner, tokens.access_token)).toEqual({ active: false });
    expect(await tokenOutcome(refreshRequest(url, partner, tokens.refresh_token!))).toBe(
      'invalid_grant',
    );
  });
});
