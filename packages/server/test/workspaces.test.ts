// Workspaces, roles, invitations and isolation between workspaces, on both stores.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../src/db/store.ts';
import { openTestStore, storeKinds } from './helpers/stores.ts';
import { buildTestApp } from './helpers/app.ts';
import { ConsoleClient } from './helpers/console-client.ts';
import { createWorkspace } from '../src/services/workspaces.ts';

function invitationPath(html: string): string {
  const match = /data-testid="secret">http:\/\/localhost:8080(\/invite\/[^<]+)</.exec(html);
  if (!match?.[1]) throw new Error('no invitation link on the page');
  return match[1];
}

describe.each(storeKinds)('workspaces on %s', (kind) => {
  let store: Store;
  let app: FastifyInstance;
  let n = 0;

  beforeAll(async () => {
    store = await openTestStore(kind);
    app = await buildTestApp(store);
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  /** An admin with a fresh workspace, and a second user who is not in it yet. */
  async function team() {
    n += 1;
    const admin = new ConsoleClient(app);
    await admin.signUp(`admin${n}@example.com`);
    const created = await admin.post('/workspaces', { name: `Team ${n}` });
    expect(created.statusCode).toBe(303);
    const base = created.headers.location as string;
    const other = new ConsoleClient(app);
    await other.signUp(`other${n}@example.com`);
    return { admin, other, base, otherEmail: `other${n}@example.com` };
  }

  async function invite(admin: ConsoleClient, base: string, role = 'member', hours = '72') {
    const response = await admin.post(
      `${base}/invitations`,
      { role, expiresInHours: hours },
      { from: base },
    );
    expect(response.statusCode).toBe(303);
    return invitationPath((await admin.get(base)).body);
  }

  async function userId(email: string) {
    const row = await store.db
      .selectFrom('users')
      .select('id')
      .where('email', '=', email)
      .executeTakeFirstOrThrow();
    return row.id;
  }

  it('creates a workspace with its creator as admin, and lists it', async () => {
    const { admin, base } = await team();
    expect(base).toBe(`/w/team-${n}`);
    const page = await admin.get(base);
    expect(page.body).toContain('your role: <strong>admin</strong>');
    expect((await admin.get('/workspaces')).body).toContain(`href="${base}"`);
  });

  it('gives a workspace with a taken name its own slug', async () => {
    const a = new ConsoleClient(app);
    await a.signUp('dup1@example.com');
    const b = new ConsoleClient(app);
    await b.signUp('dup2@example.com');
    const first = await a.post('/workspaces', { name: 'Same Name' });
    const second = await b.post('/workspaces', { name: 'Same Name' });
    expect(first.headers.location).toBe('/w/same-name');
    expect(second.headers.location).toMatch(/^\/w\/same-name-[a-z0-9]{6}$/);
  });

  it('gives two workspaces created at the same moment with one name each their own slug', async () => {
    const client = new ConsoleClient(app);
    await client.signUp(`race${kind}@example.com`);
    const userId = (
      await store.db
        .selectFrom('users')
        .select('id')
        .where('email', '=', `race${kind}@example.com`)
        .executeTakeFirstOrThrow()
    ).id;
    const made = await Promise.all(
      Array.from({ length: 4 }, () =>
        createWorkspace(store.db, userId, { name: `Simultaneous ${kind}` }),
      ),
    );
    expect(new Set(made.map((w) => w.slug)).size).toBe(4);
  });

  it('shows a one-time invitation link only to the session that created it', async () => {
    const { admin, base } = await team();
    await admin.post(
      `${base}/invitations`,
      { role: 'member', expiresInHours: '72' },
      { from: base },
    );
    const flash = admin.cookies.get('eg_flash');
    const stranger = new ConsoleClient(app);
    await stranger.signUp(`stranger${n}@example.com`);
    stranger.cookies.set('eg_flash', flash!);
    expect((await stranger.get('/workspaces')).body).not.toContain('data-testid="secret"');
    expect((await admin.get(base)).body).toContain('data-testid="secret"');
  });

  it('refuses an empty workspace name with a clear message', async () => {
    const client = new ConsoleClient(app);
    await client.signUp('empty@example.com');
    const response = await client.post('/workspaces', { name: '   ' });
    expect(response.statusCode).toBe(422);
    expect(response.body).toContain('Name is required');
  });

  it('lets an admin rename, but not a member', async () => {
    const { admin, other, base } = await team();
    const path = await invite(admin, base);
    await other.post(path, {});
    expect(
      (await admin.post(`${base}/rename`, { name: 'Renamed Team' }, { from: base })).statusCode,
    ).toBe(303);
    expect((await admin.get(base)).body).toContain('<h1>Renamed Team</h1>');
    const denied = await other.post(`${base}/rename`, { name: 'Hijacked' }, { from: base });
    expect(denied.statusCode).toBe(403);
    expect(denied.body).toContain('Only an admin of this workspace can do that.');
    expect((await admin.get(base)).body).toContain('<h1>Renamed Team</h1>');
  });

  it('keeps workspaces apart: a non-member gets 404 for pages and actions', async () => {
    const { admin, other, base } = await team();
    expect((await other.get(base)).statusCode).toBe(404);
    const token = (await other.get('/workspaces')).body;
    expect(token).not.toContain(base);
    for (const action of ['rename', 'invitations', 'leave']) {
      const response = await other.post(
        `${base}/${action}`,
        { name: 'x', role: 'member' },
        { from: '/workspaces' },
      );
      expect(response.statusCode).toBe(404);
    }
    const adminId = await userId(`admin${n}@example.com`);
    expect(
      (await other.post(`${base}/members/${adminId}/remove`, {}, { from: '/workspaces' }))
        .statusCode,
    ).toBe(404);
    expect((await admin.get(base)).body).toContain(`admin${n}@example.com`);
  });

  it('accepts an invitation once; the link then says it was used', async () => {
    const { admin, other, base, otherEmail } = await team();
    const path = await invite(admin, base, 'member');
    const preview = await other.get(path);
    expect(preview.body).toContain(`Join Team ${n}`);
    const accepted = await other.post(path, {});
    expect(accepted.headers.location).toBe(base);
    expect((await other.get(base)).body).toContain('your role: <strong>member</strong>');
    expect((await admin.get(base)).body).toContain(otherEmail);

    const third = new ConsoleClient(app);
    await third.signUp(`third${n}@example.com`);
    const reused = await third.post(path, {}, { from: '/workspaces' });
    expect(reused.statusCode).toBe(410);
    expect((await third.get(path)).body).toContain('already been used');
    expect((await third.get(base)).statusCode).toBe(404);
  });

  it('refuses an expired invitation', async () => {
    const { admin, other, base } = await team();
    const path = await invite(admin, base, 'member', '1');
    await store.db
      .updateTable('invitations')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .execute();
    const response = await other.get(path);
    expect(response.statusCode).toBe(410);
    expect(response.body).toContain('This invitation has expired');
    expect((await other.post(path, {}, { from: '/workspaces' })).statusCode).toBe(410);
    expect((await other.get(base)).statusCode).toBe(404);
  });

  it('refuses an unknown or withdrawn invitation', async () => {
    const { admin, other, base } = await team();
    expect((await other.get('/invite/egi_nonsense')).statusCode).toBe(404);
    const path = await invite(admin, base);
    const invitation = await store.db
      .selectFrom('invitations')
      .innerJoin('workspaces', 'workspaces.id', 'invitations.workspace_id')
      .select('invitations.id')
      .where('workspaces.slug', '=', base.slice(3))
      .where('invitations.accepted_at', 'is', null)
      .executeTakeFirstOrThrow();
    await admin.post(`${base}/invitations/${invitation.id}/revoke`, {}, { from: base });
    expect((await other.get(path)).body).toContain('This invitation was withdrawn.');
  });

  it('lets two people race for one invitation: exactly one joins', async () => {
    const { admin, base } = await team();
    const path = await invite(admin, base);
    const racers = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const c = new ConsoleClient(app);
        await c.signUp(`racer${n}-${i}@example.com`);
        return c;
      }),
    );
    const results = await Promise.all(racers.map((c) => c.post(path, {}, { from: '/workspaces' })));
    expect(results.map((r) => r.statusCode).sort()).toEqual([303, 410, 410]);
  });

  it('changes roles, and never demotes or removes the last admin', async () => {
    const { admin, other, base, otherEmail } = await team();
    await other.post(await invite(admin, base), {});
    const adminId = await userId(`admin${n}@example.com`);
    const otherId = await userId(otherEmail);

    const demoteSelf = await admin.post(
      `${base}/members/${adminId}/role`,
      { role: 'member' },
      { from: base },
    );
    expect(demoteSelf.statusCode).toBe(409);
    expect(demoteSelf.body).toContain('A workspace needs at least one admin');
    expect((await admin.post(`${base}/leave`, {}, { from: base })).statusCode).toBe(409);

    expect(
      (await other.post(`${base}/members/${adminId}/role`, { role: 'member' }, { from: base }))
        .statusCode,
    ).toBe(403);
    expect(
      (await admin.post(`${base}/members/${otherId}/role`, { role: 'admin' }, { from: base }))
        .statusCode,
    ).toBe(303);
    expect((await other.get(base)).body).toContain('your role: <strong>admin</strong>');
    expect(
      (await admin.post(`${base}/members/${adminId}/role`, { role: 'member' }, { from: base }))
        .statusCode,
    ).toBe(303);
    expect(
      (await other.post(`${base}/members/${otherId}/role`, { role: 'member' }, { from: base }))
        .statusCode,
    ).toBe(409);
    expect(
      (await other.post(`${base}/members/${adminId}/remove`, {}, { from: base })).statusCode,
    ).toBe(303);
    expect((await admin.get(base)).statusCode).toBe(404);
    const bad = await other.post(
      `${base}/members/${otherId}/role`,
      { role: 'owner' },
      { from: base },
    );
    expect(bad.statusCode).toBe(422);
  });

  it('lets a member leave', async () => {
    const { admin, other, base } = await team();
    await other.post(await invite(admin, base), {});
    const left = await other.post(`${base}/leave`, {}, { from: base });
    expect(left.headers.location).toBe('/workspaces');
    expect((await other.get(base)).statusCode).toBe(404);
  });

  it('records who did what in the audit log', async () => {
    const { admin, other, base } = await team();
    await other.post(await invite(admin, base), {});
    const page = (await admin.get(base)).body;
    for (const action of ['workspace.created', 'invitation.created', 'member.joined'])
      expect(page).toContain(action);
  });
});
