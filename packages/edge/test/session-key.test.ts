// The session part of the cache key, without a database: every component of a session's state
// separates keys, the same canonical state gives the same key, and a taint hides the key until a
// current reading of the state arrives.
import { describe, expect, it } from 'vitest';
import {
  initialState,
  requestKey,
  SessionKey,
  sessionKeyText,
  type ObservedState,
  type SessionIdentity,
} from '../src/core/session-key.ts';

const identity: SessionIdentity = {
  cacheId: 'cch_a',
  database: 'shop',
  user: 'app',
  startupSettings: new Map([['DateStyle', 'ISO']]),
};
const reported = new Map([['TimeZone', 'UTC']]);
const observed: ObservedState = {
  currentUser: 'app',
  sessionUser: 'app',
  settings: new Map([['app.tenant', '1']]),
  private: false,
};

function text(changes: {
  identity?: Partial<SessionIdentity>;
  reported?: Map<string, string>;
  observed?: Partial<ObservedState>;
  privateTo?: string;
  ignored?: Set<string>;
}): string {
  return sessionKeyText(
    { ...identity, ...changes.identity },
    changes.reported ?? reported,
    { ...observed, ...changes.observed },
    changes.privateTo ?? 'p1',
    changes.ignored,
  );
}

describe('sessionKeyText', () => {
  const base = text({});

  it.each([
    ['cache', { identity: { cacheId: 'cch_b' } }],
    ['database', { identity: { database: 'other' } }],
    ['user', { identity: { user: 'bob' } }],
    [
      'a startup setting’s value',
      { identity: { startupSettings: new Map([['DateStyle', 'SQL']]) } },
    ],
    [
      'a startup setting more',
      {
        identity: {
          startupSettings: new Map([
            ['DateStyle', 'ISO'],
            ['search_path', 'a'],
          ]),
        },
      },
    ],
    ['no startup settings', { identity: { startupSettings: new Map() } }],
    ['a reported value', { reported: new Map([['TimeZone', 'Asia/Tokyo']]) }],
    [
      'a reported parameter more',
      {
        reported: new Map([
          ['TimeZone', 'UTC'],
          ['is_superuser', 'on'],
        ]),
      },
    ],
    ['the current user (SET ROLE)', { observed: { currentUser: 'admin' } }],
    ['the session user', { observed: { sessionUser: 'admin' } }],
    ['a setting’s value', { observed: { settings: new Map([['app.tenant', '2']]) } }],
    ['a setting’s absence', { observed: { settings: new Map() } }],
    ['an empty setting', { observed: { settings: new Map([['app.tenant', '']]) } }],
    ['private state', { observed: { private: true } }],
  ])('differs with %s', (_what, changes) => {
    expect(text(changes)).not.toBe(base);
  });

  it('keeps components apart: a value cannot pass for the next component', () => {
    expect(text({ identity: { database: 'ab', user: 'c' } })).not.toBe(
      text({ identity: { database: 'a', user: 'bc' } }),
    );
    const two = new Map([
      ['a', '1'],
      ['b', '2'],
    ]);
    expect(text({ observed: { settings: two } })).not.toBe(
      text({ observed: { settings: new Map([['a', '1b=2']]) } }),
    );
    expect(text({ observed: { settings: new Map([['app.t', '1']]) } })).not.toBe(
      text({ observed: { settings: new Map([['app.t1', '']]) } }),
    );
    expect(text({ identity: { database: 'a', user: 'b' } })).not.toBe(
      text({ identity: { database: 'a\u0000b', user: '' } }),
    );
    expect(text({ observed: { currentUser: 'x', sessionUser: 'y' } })).not.toBe(
      text({ observed: { currentUser: 'y', sessionUser: 'x' } }),
    );
    expect(
      text({ reported: new Map(), observed: { settings: new Map([['TimeZone', 'UTC']]) } }),
    ).not.toBe(base);
  });

  it('is the same for the same state reached in another order', () => {
    const settings = new Map([
      ['search_path', 'a'],
      ['app.tenant', '1'],
    ]);
    const reversed = new Map([...settings].reverse());
    expect(text({ observed: { settings } })).toBe(text({ observed: { settings: reversed } }));
    const reports = new Map([
      ['TimeZone', 'UTC'],
      ['DateStyle', 'ISO'],
    ]);
    expect(text({ reported: reports })).toBe(text({ reported: new Map([...reports].reverse()) }));
    const startup = new Map([
      ['a', '1'],
      ['b', '2'],
    ]);
    expect(text({ identity: { startupSettings: startup } })).toBe(
      text({ identity: { startupSettings: new Map([...startup].reverse()) } }),
    );
  });

  it('holds the session’s own mark only when its state is private', () => {
    expect(text({ privateTo: 'p2' })).toBe(base);
    const mine = text({ observed: { private: true }, privateTo: 'p1' });
    expect(text({ observed: { private: true }, privateTo: 'p2' })).not.toBe(mine);
    expect(mine).toContain('p1');
  });

  it('leaves out the reports it is told to ignore, and only those', () => {
    const withVersion = new Map([
      ['TimeZone', 'UTC'],
      ['server_version', '18'],
    ]);
    const ignored = new Set(['server_version']);
    expect(text({ reported: withVersion, ignored })).toBe(text({ ignored }));
    expect(text({ reported: withVersion })).not.toBe(base);
    expect(text({ reported: new Map([['TimeZone', 'EST']]), ignored })).not.toBe(base);
  });

  it('is the state of a session that has changed nothing', () => {
    expect(initialState('app')).toEqual({
      currentUser: 'app',
      sessionUser: 'app',
      settings: new Map(),
      private: false,
    });
  });
});

describe('requestKey', () => {
  it('is the session key id, then every part of the request, kept apart', () => {
    expect(requestKey('s1', ['Q', 'SELECT 1'])).toBe('s1\u0000Q\u0000SELECT 1');
    expect(requestKey('s1', ['E', 'a', 'b'])).not.toBe(requestKey('s1', ['E', 'ab', '']));
    expect(requestKey('s1', ['Q', 'x'])).not.toBe(requestKey('s2', ['Q', 'x']));
  });
});

describe('SessionKey', () => {
  const tenant = (n: string): ObservedState => ({
    currentUser: 'app',
    sessionUser: 'app',
    settings: new Map([['app.tenant', n]]),
    private: false,
  });

  function probed(key: SessionKey, state: ObservedState | null, idle = true): void {
    const mark = key.probeDue();
    expect(mark).not.toBeNull();
    key.learn(mark as number, state, idle);
  }

  it('is known at connect, with the same id for sessions of the same identity', () => {
    const one = new SessionKey(identity);
    const two = new SessionKey(identity);
    expect(one.known).toBe(true);
    expect(one.id).toMatch(/^s[0-9a-z]+$/);
    expect(one.id).toBe(two.id);
    expect(new SessionKey({ ...identity, user: 'bob' }).id).not.toBe(one.id);
    expect(one.probeDue()).toBeNull();
  });

  it('follows reported parameters, except ignored ones', () => {
    const key = new SessionKey(identity, new Set(['server_version']));
    const before = key.id;
    key.report('server_version', '18');
    expect(key.id).toBe(before);
    key.report('TimeZone', 'UTC');
    const utc = key.id;
    expect(utc).not.toBe(before);
    key.report('TimeZone', 'UTC');
    expect(key.id).toBe(utc);
    key.report('TimeZone', 'EST');
    expect(key.id).not.toBe(utc);
  });

  it.each(['taints', 'discards'] as const)(
    '%s: unknown until a probe reads the state',
    (effect) => {
      const key = new SessionKey(identity);
      const fresh = key.id;
      expect(key.note(effect)).toBe(true);
      expect(key.known).toBe(false);
      expect(key.id).toBeNull();
      probed(key, tenant('1'));
      expect(key.known).toBe(true);
      expect(key.id).not.toBe(fresh);
      expect(key.probeDue()).toBeNull();
    },
  );

  it('sessions that reach the same state share a key; other states do not', () => {
    const [a, b, c] = [1, 2, 3].map(() => new SessionKey(identity)) as [
      SessionKey,
      SessionKey,
      SessionKey,
    ];
    for (const [key, n] of [
      [a, '1'],
      [b, '1'],
      [c, '2'],
    ] as const) {
      key.note('taints');
      probed(key, tenant(n));
    }
    expect(a.id).toBe(b.id);
    expect(c.id).not.toBe(a.id);
  });

  it('private state is shared with no one', () => {
    const [a, b] = [1, 2].map(() => new SessionKey(identity)) as [SessionKey, SessionKey];
    for (const key of [a, b]) {
      key.note('taints');
      probed(key, { ...tenant('1'), private: true });
    }
    expect(a.id).not.toBe(b.id);
  });

  it('a statement that changes nothing keeps the key', () => {
    const key = new SessionKey(identity);
    const id = key.id;
    expect(key.note('none')).toBe(false);
    expect(key.note('transaction')).toBe(false);
    expect(key.id).toBe(id);
    expect(key.probeDue()).toBeNull();
  });

  it('a reading taken before a later taint does not make the state known', () => {
    const key = new SessionKey(identity);
    key.note('taints');
    const first = key.probeDue() as number;
    key.note('taints');
    const second = key.probeDue() as number;
    expect(second).not.toBe(first);
    key.learn(first, tenant('1'), true);
    expect(key.id).toBeNull();
    key.learn(second, tenant('2'), true);
    expect(key.known).toBe(true);
  });

  it('a failed probe leaves the state unknown and owes another', () => {
    const key = new SessionKey(identity);
    key.note('taints');
    probed(key, null);
    expect(key.id).toBeNull();
    probed(key, tenant('1'));
    expect(key.known).toBe(true);
  });

  it('a failed probe behind one already owed owes just that one', () => {
    const key = new SessionKey(identity);
    key.note('taints');
    const first = key.probeDue() as number;
    key.note('copies');
    key.learn(first, null, true);
    // The COPY's probe still waits for the exchange after the copy.
    expect(key.probeDue()).toBeNull();
    expect(key.probeDue()).not.toBeNull();
  });

  it('says a probe is owed from a taint until it is sent, and not while a copy runs', () => {
    const key = new SessionKey(identity);
    expect(key.probeOwed).toBe(false);
    key.note('taints');
    // Left owed (a probe put off inside a transaction block): still owed, state still unknown.
    expect(key.probeOwed).toBe(true);
    expect(key.id).toBeNull();
    key.note('copies');
    expect(key.probeOwed).toBe(false);
    expect(key.probeDue()).toBeNull();
    expect(key.probeOwed).toBe(true);
    const mark = key.probeDue() as number;
    expect(key.probeOwed).toBe(false);
    key.learn(mark, null, true);
    expect(key.probeOwed).toBe(true);
  });

  it('copies: the probe waits for the exchange after the copy', () => {
    const key = new SessionKey(identity);
    key.note('copies');
    expect(key.probeDue()).toBeNull();
    expect(key.id).toBeNull();
    probed(key, tenant('1'));
    expect(key.known).toBe(true);
  });

  it('ending a transaction that changed the state taints it again, until read idle', () => {
    const key = new SessionKey(identity);
    key.note('taints');
    probed(key, tenant('1'), false);
    expect(key.known).toBe(true);
    expect(key.note('transaction')).toBe(true);
    expect(key.id).toBeNull();
    // ROLLBACK TO SAVEPOINT: still in the transaction, so its end still counts.
    probed(key, tenant('1'), false);
    expect(key.note('transaction')).toBe(true);
    probed(key, tenant(''), true);
    expect(key.note('transaction')).toBe(false);
    expect(key.known).toBe(true);
  });

  it('a stale reading taken idle does not forget a change made since in a transaction', () => {
    const key = new SessionKey(identity);
    key.note('taints');
    const idle = key.probeDue() as number;
    key.note('taints');
    const inTransaction = key.probeDue() as number;
    key.learn(idle, tenant('1'), true);
    key.learn(inTransaction, tenant('2'), false);
    expect(key.note('transaction')).toBe(true);
  });
});
