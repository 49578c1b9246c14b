// A replication password given to the API is sealed like connection secrets: key rotation
// re-seals it (and never deletes the data key it still needs), and it opens only for its cache.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyring, rotateKeys, sealSecret } from '../src/connect/keyring.ts';
import { insertCache } from '../src/db/queries/caches.ts';
import type { Store } from '../src/db/store.ts';
import { signUp } from '../src/services/accounts.ts';
import { openReplicationCredential } from '../src/services/cache-invalidation.ts';
import { openTestStore } from './helpers/stores.ts';

const SECRET = 'replication-root-secret-0123456789-abcdefgh';
const NEXT = 'replication-next-secret-0123456789-abcdefgh';

describe('sealed replication credentials', () => {
  let store: Store;

  beforeAll(async () => {
    store = await openTestStore('pglite');
  });
  afterAll(async () => {
    await store?.close();
  });

  it('survive key rotation and a new root secret, and open only for their own cache', async () => {
    const { personalWorkspace } = await signUp(store.db, {
      email: 'sealed@example.com',
      password: 'long enough pw',
    });
    const cache = async (id: string) => {
      const sealed = await sealSecret(
        store.db,
        createKeyring(SECRET),
        personalWorkspace.id,
        `cache-replication:${id}`,
        `password of ${id}`,
      );
      return insertCache(store.db, {
        id,
        workspaceId: personalWorkspace.id,
        name: id,
        description: '',
        type: 'postgres',
        hostname: '127.0.0.1',
        port: 5432,
        defaultMode: 'auto',
        defaultTtlSeconds: 60,
        originTls: 'disable',
        replication: {
          connectionId: null,
          username: 'replicator',
          sealed: { keyId: sealed.keyId, secret: sealed.sealed },
          database: 'app',
          publication: 'app_pub',
          maxLagSeconds: 5,
        },
      });
    };
    const first = await cache('cch_sealedAAAAAAAAAAAAAAAAA');
    const second = await cache('cch_sealedBBBBBBBBBBBBBBBBB');
    expect(first.replication_secret).not.toContain('password of');

    const report = await rotateKeys(store.db, createKeyring(SECRET));
    expect(report.resealedCacheCredentials).toBe(2);
    const rotated = await rotateKeys(store.db, createKeyring(NEXT, SECRET));
    expect(rotated.rewrappedKeys).toBeGreaterThan(0);
    const rows = await store.db
      .selectFrom('caches')
      .selectAll()
      .where('id', 'in', [first.id, second.id])
      .orderBy('id')
      .execute();
    expect(rows[0]!.replication_key_id).not.toBe(first.replication_key_id);
    expect(await openReplicationCredential(store.db, createKeyring(NEXT), rows[0]!)).toEqual({
      username: 'replicator',
      password: `password of ${first.id}`,
      database: 'app',
    });
    // A sealed value moved to another cache's row does not open there.
    const swapped = { ...rows[1]!, replication_secret: rows[0]!.replication_secret };
    await expect(
      openReplicationCredential(store.db, createKeyring(NEXT), swapped),
    ).rejects.toThrow();
  });
});
