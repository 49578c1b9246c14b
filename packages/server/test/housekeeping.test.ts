// Expired rows are swept away, and the logs never carry bearer secrets from URLs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../src/db/store.ts';
import { sweepExpired } from '../src/services/housekeeping.ts';
import { createSession } from '../src/services/sessions.ts';
import { signUp } from '../src/services/accounts.ts';
import { redactUrl } from '../src/logger.ts';
import { openTestStore, storeKinds } from './helpers/stores.ts';

describe.each(storeKinds)('housekeeping on %s', (kind) => {
  let store: Store;
  beforeAll(async () => {
    store = await openTestStore(kind);
  });
  afterAll(async () => {
    await store?.close();
  });

  it('deletes expired sessions, OAuth artefacts and idempotency records, and keeps live ones', async () => {
    const { user } = await signUp(store.db, {
      email: 'sweep@example.com',
      password: 'long enough pw',
    });
    await createSession(store.db, user.id, { ip: null, userAgent: null });
    await createSession(store.db, user.id, { ip: null, userAgent: null });
    await store.db
      .updateTable('sessions')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where(
        'id_hash',
        '=',
        (await store.db.selectFrom('sessions').select('id_hash').executeTakeFirstOrThrow()).id_hash,
      )
      .execute();
    const past = new Date(Date.now() - 1000);
    const future = new Date(Date.now() + 3600_000);
    await store.db
      .insertInto('oauth_tokens')
      .values([
        {
          id_hash: 'expired',
          kind: 'AccessToken',
          grant_id: null,
          payload: '{}',
          expires_at: past,
        },
        { id_hash: 'live', kind: 'AccessToken', grant_id: null, payload: '{}', expires_at: future },
      ])
      .execute();
    await store.db
      .insertInto('oauth_payloads')
      .values({
        model: 'Interaction',
        id: 'old',
        payload: '{}',
        grant_id: null,
        uid: null,
        user_code: null,
        expires_at: past,
      })
      .execute();
    await store.db
      .insertInto('idempotency_keys')
      .values({ credential: 'c', key: 'k', request_hash: 'h', expires_at: past })
      .execute();

    const { personalWorkspace } = await signUp(store.db, {
      email: 'sweep-connect@example.com',
      password: 'long enough pw',
    });
    const day = 24 * 3600_000;
    const session = (id: string, expires: Date, codeExpires: Date | null) => ({
      id,
      token_hash: `h_${id}`,
      workspace_id: personalWorkspace.id,
      created_by: 'test',
      types: ['postgresql'],
      name: 'n',
      redirect_url: 'https://partner.example/cb',
      frame_origins: ['https://partner.example'],
      expires_at: expires,
      code_expires_at: codeExpires,
    });
    await store.db
      .insertInto('connect_sessions')
      .values([
        session('cs_old', new Date(Date.now() - 2 * day), null),
        session('cs_recent', new Date(Date.now() - 1000), null),
        session('cs_live', future, null),
      ])
      .execute();

    await sweepExpired(store.db);
    expect(
      (await store.db.selectFrom('connect_sessions').select('id').orderBy('id').execute()).map(
        (r) => r.id,
      ),
    ).toEqual(['cs_live', 'cs_recent']);

    expect(await store.db.selectFrom('sessions').select('id_hash').execute()).toHaveLength(1);
    expect(
      (await store.db.selectFrom('oauth_tokens').select('id_hash').execute()).map((r) => r.id_hash),
    ).toEqual(['live']);
    expect(await store.db.selectFrom('oauth_payloads').select('id').execute()).toHaveLength(0);
    expect(await store.db.selectFrom('idempotency_keys').select('key').execute()).toHaveLength(0);
  });
});

describe('log redaction', () => {
  it.each([
    ['/invite/egi_secretsecret', '/invite/[redacted]'],
    ['/login?next=%2Finvite%2Fegi_secret', '/login?next=[redacted]'],
    ['/oauth2/device?user_code=ABCD-EFGH', '/oauth2/device?user_code=[redacted]'],
    ['/w/acme', '/w/acme'],
    ['/connect/egct_secret?type=mysql', '/connect/[redacted]?type=[redacted]'],
    ['/connect/egct_secret/cancel', '/connect/[redacted]/cancel'],
    ['/v1/connect/sessions/egct_secret', '/v1/connect/sessions/[redacted]'],
    ['/connect.js', '/connect.js'],
  ])('masks %s', (url, expected) => {
    expect(redactUrl(url)).toBe(expected);
  });
});
