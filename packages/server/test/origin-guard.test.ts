// The SSRF guard for cache origins: which hosts a cache may point at, and what the user is told otherwise.
import { normalizeHostname } from '../src/services/caches.ts';
import { describe, expect, it } from 'vitest';
import { Problem } from '../src/problem.ts';
import { checkOrigin, isForbiddenAddress, isPrivateAddress } from '../src/services/origin-guard.ts';

/** A DNS stand-in: known names answer, anything else fails as getaddrinfo does. */
function resolverOf(records: Record<string, string[]>) {
  return async (host: string): Promise<string[]> => {
    const addresses = records[host];
    if (addresses) return addresses;
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  };
}

const noDns = async (host: string): Promise<string[]> => {
  throw new Error(`the guard asked DNS about ${host}`);
};

async function refusal(promise: Promise<unknown>): Promise<Problem> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!(error instanceof Problem)) throw new Error(`expected a Problem, got ${String(error)}`);
  expect(error.status).toBe(422);
  expect(error.errors).toEqual([{ path: 'hostname', message: error.message }]);
  return error;
}

const forbidden = [
  ['169.254.169.254', 'cloud metadata (AWS, GCP, Azure)'],
  ['169.254.0.1', 'IPv4 link-local'],
  ['169.254.255.255', 'end of IPv4 link-local'],
  ['100.100.100.200', 'Alibaba metadata'],
  ['fe80::1', 'IPv6 link-local'],
  ['febf:ffff::1', 'end of fe80::/10'],
  ['fd00:ec2::254', 'AWS metadata over IPv6'],
  ['0.0.0.0', 'unspecified IPv4'],
  ['0.1.2.3', '0.0.0.0/8'],
  ['::', 'unspecified IPv6'],
  ['224.0.0.1', 'IPv4 multicast'],
  ['239.255.255.250', 'end of IPv4 multicast'],
  ['ff02::1', 'IPv6 multicast'],
  ['255.255.255.255', 'broadcast'],
  ['::ffff:169.254.169.254', 'IPv4-mapped metadata, dotted'],
  ['::ffff:a9fe:a9fe', 'IPv4-mapped metadata, hex'],
  ['0:0:0:0:0:ffff:a9fe:a9fe', 'IPv4-mapped metadata, uncompressed'],
  ['::ffff:100.100.100.200', 'IPv4-mapped Alibaba metadata'],
  ['::ffff:0.0.0.0', 'IPv4-mapped unspecified'],
  ['::ffff:224.0.0.1', 'IPv4-mapped multicast'],
  ['64:ff9b::169.254.169.254', 'NAT64 metadata'],
  ['::169.254.169.254', 'IPv4-compatible metadata, dotted'],
  ['::a9fe:a9fe', 'IPv4-compatible metadata, hex'],
  ['64:ff9b:1::a9fe:a9fe', 'NAT64 local-use metadata'],
  ['2002:a9fe:a9fe::1', '6to4 metadata'],
  ['240.0.0.1', 'reserved class E'],
] as const;

const privateAddresses = [
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'end of 127/8'],
  ['::1', 'IPv6 loopback'],
  ['10.1.2.3', '10/8'],
  ['172.16.0.1', 'start of 172.16/12'],
  ['172.31.255.255', 'end of 172.16/12'],
  ['192.168.1.10', '192.168/16'],
  ['100.64.0.1', 'CGNAT'],
  ['100.127.255.255', 'end of CGNAT'],
  ['fc00::1', 'IPv6 unique local'],
  ['fd12:3456::1', 'IPv6 unique local (fd)'],
  ['::ffff:10.0.0.1', 'IPv4-mapped private'],
  ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
  ['198.18.0.1', 'benchmarking 198.18/15'],
  ['192.0.0.8', 'IETF protocol assignments'],
  ['::7f00:1', 'IPv4-compatible loopback'],
  ['fec0::1', 'IPv6 site-local (deprecated)'],
  ['192.0.2.2', 'documentation TEST-NET-1'],
  ['::ffff:0:7f00:1', 'IPv4-translated loopback'],
] as const;

const publicAddresses = [
  '93.184.216.34',
  '2606:2800:220:1:248:1893:25c8:1946',
  '169.253.255.255',
  '169.255.0.0',
  '172.32.0.1',
  '100.128.0.1',
  '11.0.0.1',
  '223.255.255.255',
  '::ffff:93.184.216.34',
];

describe('origins that are fine', () => {
  it.each(publicAddresses)('a name resolving to %s passes, even under deny', async (address) => {
    const resolve = resolverOf({ 'db.example.com': [address] });
    await expect(
      checkOrigin('db.example.com', { privateRanges: 'deny', resolve }),
    ).resolves.toEqual({
      addresses: [address],
    });
  });

  it.each([
    'db.example.com.',
    'DB.Example.COM',
    `${'a'.repeat(63)}.example.com`,
    '1password.com',
    'xn--bcher-kva.ch',
  ])('the host name %s is accepted and looked up', async (hostname) => {
    const resolve = resolverOf({ [hostname]: ['93.184.216.34'] });
    await expect(checkOrigin(hostname, { privateRanges: 'deny', resolve })).resolves.toEqual({
      addresses: ['93.184.216.34'],
    });
  });

  it.each(['8.8.8.8', '2001:4860:4860::8888', '[2001:4860:4860::8888]'])(
    'the IP literal %s passes without asking DNS',
    async (hostname) => {
      const { addresses } = await checkOrigin(hostname, { privateRanges: 'deny', resolve: noDns });
      expect(addresses).toEqual([hostname.replace(/^\[|\]$/g, '')]);
    },
  );

  it('every address of a name with several is returned', async () => {
    const resolve = resolverOf({
      'db.example.com': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'],
    });
    const { addresses } = await checkOrigin('db.example.com', { privateRanges: 'allow', resolve });
    expect(addresses).toEqual(['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946']);
  });
});

describe('link-local, metadata and other never-reachable addresses are always refused', () => {
  it.each(forbidden)('a name resolving to %s (%s)', async (address) => {
    const resolve = resolverOf({ 'db.example.com': [address] });
    for (const privateRanges of ['allow', 'deny'] as const) {
      const problem = await refusal(checkOrigin('db.example.com', { privateRanges, resolve }));
      expect(problem.code).toBe('origin.forbidden_address');
      expect(problem.message).toContain(`db.example.com resolves to ${address}, `);
      expect(problem.message).toContain('Edgegate never connects there');
    }
  });

  it.each(forbidden)('the IP literal %s (%s)', async (address) => {
    const problem = await refusal(checkOrigin(address, { privateRanges: 'allow', resolve: noDns }));
    expect(problem.code).toBe('origin.forbidden_address');
    expect(problem.message).toMatch(new RegExp(`^${address.replace(/\./g, '\\.')} is `));
  });

  it('says what the metadata address is', async () => {
    const resolve = resolverOf({ 'db.example.com': ['169.254.169.254'] });
    const problem = await refusal(
      checkOrigin('db.example.com', { privateRanges: 'allow', resolve }),
    );
    expect(problem.message).toBe(
      'db.example.com resolves to 169.254.169.254, a link-local/cloud-metadata address; Edgegate never connects there',
    );
  });

  it('a bracketed IPv6 metadata literal is refused too', async () => {
    const problem = await refusal(
      checkOrigin('[fd00:ec2::254]', { privateRanges: 'allow', resolve: noDns }),
    );
    expect(problem.code).toBe('origin.forbidden_address');
  });

  it('a name resolving to one public and one metadata address is refused', async () => {
    const resolve = resolverOf({ 'db.example.com': ['93.184.216.34', '169.254.169.254'] });
    const problem = await refusal(
      checkOrigin('db.example.com', { privateRanges: 'allow', resolve }),
    );
    expect(problem.code).toBe('origin.forbidden_address');
    expect(problem.message).toContain('169.254.169.254');
  });
});

describe('loopback and private networks depend on the operator', () => {
  it.each(privateAddresses)('%s (%s) is allowed by default', async (address) => {
    const resolve = resolverOf({ 'db.internal': [address] });
    await expect(checkOrigin('db.internal', { privateRanges: 'allow', resolve })).resolves.toEqual({
      addresses: [address],
    });
  });

  it.each(privateAddresses)('%s (%s) is refused under ORIGIN_PRIVATE=deny', async (address) => {
    const resolve = resolverOf({ 'db.internal': [address] });
    const problem = await refusal(checkOrigin('db.internal', { privateRanges: 'deny', resolve }));
    expect(problem.code).toBe('origin.private_address');
    expect(problem.message).toContain(`db.internal resolves to ${address}, `);
    expect(problem.message).toContain('ORIGIN_PRIVATE=deny');
  });

  it('a private IP literal is refused under deny and names the address', async () => {
    const problem = await refusal(
      checkOrigin('10.0.0.5', { privateRanges: 'deny', resolve: noDns }),
    );
    expect(problem.message).toMatch(/^10\.0\.0\.5 is a private-network address; /);
  });

  it('a name resolving to one public and one private address is refused under deny', async () => {
    const resolve = resolverOf({ 'db.example.com': ['93.184.216.34', '10.0.0.5'] });
    const problem = await refusal(
      checkOrigin('db.example.com', { privateRanges: 'deny', resolve }),
    );
    expect(problem.code).toBe('origin.private_address');
    expect(problem.message).toContain('10.0.0.5');
    await expect(
      checkOrigin('db.example.com', { privateRanges: 'allow', resolve }),
    ).resolves.toBeDefined();
  });
});

/**
 * Every range of the IANA IPv4 and IPv6 special-purpose registries (and the deprecated ones still
 * named elsewhere), with an address inside it and what Edgegate makes of it: `forbidden` is refused
 * under both ORIGIN_PRIVATE modes, `private` only under deny, `public` under neither.
 */
const SPECIAL_PURPOSE: [
  address: string,
  range: string,
  kind: 'forbidden' | 'private' | 'public',
][] = [
  ['0.0.0.1', '0.0.0.0/8 this network', 'forbidden'],
  ['10.200.0.1', '10.0.0.0/8 private', 'private'],
  ['100.64.0.1', '100.64.0.0/10 shared address space', 'private'],
  ['127.0.0.2', '127.0.0.0/8 loopback', 'private'],
  ['169.254.1.1', '169.254.0.0/16 link-local', 'forbidden'],
  ['172.20.0.1', '172.16.0.0/12 private', 'private'],
  ['192.0.0.1', '192.0.0.0/24 IETF protocol assignments', 'private'],
  ['192.0.0.9', '192.0.0.9/32 port control protocol anycast', 'private'],
  ['192.0.0.170', '192.0.0.170/32 NAT64/DNS64 discovery', 'private'],
  ['192.0.2.2', '192.0.2.0/24 documentation (TEST-NET-1)', 'private'],
  ['192.31.196.1', '192.31.196.0/24 AS112-v4', 'private'],
  ['192.52.193.1', '192.52.193.0/24 AMT', 'private'],
  ['192.88.99.1', '192.88.99.0/24 deprecated 6to4 relay anycast', 'private'],
  ['192.168.0.1', '192.168.0.0/16 private', 'private'],
  ['192.175.48.1', '192.175.48.0/24 direct delegation AS112', 'private'],
  ['198.18.0.1', '198.18.0.0/15 benchmarking', 'private'],
  ['198.19.255.254', 'end of 198.18.0.0/15', 'private'],
  ['198.51.100.7', '198.51.100.0/24 documentation (TEST-NET-2)', 'private'],
  ['203.0.113.9', '203.0.113.0/24 documentation (TEST-NET-3)', 'private'],
  ['224.0.0.251', '224.0.0.0/4 multicast', 'forbidden'],
  ['240.0.0.1', '240.0.0.0/4 reserved', 'forbidden'],
  ['255.255.255.255', 'limited broadcast', 'forbidden'],
  ['::1', '::1/128 loopback', 'private'],
  ['::', '::/128 unspecified', 'forbidden'],
  ['::ffff:10.0.0.1', '::ffff:0:0/96 IPv4-mapped private', 'private'],
  ['::ffff:169.254.169.254', '::ffff:0:0/96 IPv4-mapped metadata', 'forbidden'],
  ['::ffff:8.8.8.8', '::ffff:0:0/96 IPv4-mapped public', 'public'],
  ['::ffff:0:7f00:1', '::ffff:0:0:0/96 IPv4-translated loopback', 'private'],
  ['::ffff:0:a9fe:a9fe', '::ffff:0:0:0/96 IPv4-translated metadata', 'forbidden'],
  ['::ffff:0:808:808', '::ffff:0:0:0/96 IPv4-translated public', 'public'],
  ['::7f00:1', '::/96 IPv4-compatible loopback (deprecated)', 'private'],
  ['::808:808', '::/96 IPv4-compatible public (deprecated)', 'private'],
  ['64:ff9b::a00:1', '64:ff9b::/96 NAT64 of a private host', 'private'],
  ['64:ff9b::7f00:1', '64:ff9b::/96 NAT64 of loopback', 'private'],
  ['64:ff9b::a9fe:a9fe', '64:ff9b::/96 NAT64 of metadata', 'forbidden'],
  ['64:ff9b::808:808', '64:ff9b::/96 NAT64 of a public host', 'public'],
  ['64:ff9b:1::808:808', '64:ff9b:1::/48 local-use NAT64', 'private'],
  ['64:ff9b:1:a9fe:a9:fe00::', '64:ff9b:1::/48 NAT64 /48 form of metadata', 'forbidden'],
  ['100::1', '100::/64 discard-only', 'forbidden'],
  ['2001:1::1', '2001::/23 IETF protocol assignments (port control)', 'private'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001::/32 Teredo', 'private'],
  ['2001:0:a9fe:a9fe::', '2001::/32 Teredo with a metadata server', 'forbidden'],
  ['2001:2::1', '2001:2::/48 benchmarking', 'private'],
  ['2001:3::1', '2001:3::/32 AMT', 'private'],
  ['2001:4:112::1', '2001:4:112::/48 AS112-v6', 'private'],
  ['2001:10::1', '2001:10::/28 ORCHID (deprecated)', 'private'],
  ['2001:20::1', '2001:20::/28 ORCHIDv2', 'private'],
  ['2001:30::1', '2001:30::/28 drone remote ID', 'private'],
  ['2001:db8::1', '2001:db8::/32 documentation', 'private'],
  ['2002:a00:1::1', '2002::/16 6to4 of a private host', 'private'],
  ['2002:808:808::1', '2002::/16 6to4 of a public host', 'private'],
  ['2002:a9fe:a9fe::1', '2002::/16 6to4 of metadata', 'forbidden'],
  ['2620:4f:8000::1', '2620:4f:8000::/48 direct delegation AS112', 'private'],
  ['3fff::1', '3fff::/20 documentation', 'private'],
  ['5f00::1', '5f00::/16 segment routing SIDs', 'private'],
  ['fc00::1', 'fc00::/7 unique local', 'private'],
  ['fd00:ec2::254', 'AWS metadata inside fc00::/7', 'forbidden'],
  ['fe80::1', 'fe80::/10 link-local', 'forbidden'],
  ['fec0::1', 'fec0::/10 site-local (deprecated)', 'private'],
  ['ff05::1:3', 'ff00::/8 multicast', 'forbidden'],
  ['8.8.8.8', 'global unicast IPv4', 'public'],
  ['2001:4860:4860::8888', 'global unicast IPv6', 'public'],
];

describe('every special-purpose range, under each ORIGIN_PRIVATE mode', () => {
  const expected = {
    forbidden: { allow: 'origin.forbidden_address', deny: 'origin.forbidden_address' },
    private: { allow: 'accepted', deny: 'origin.private_address' },
    public: { allow: 'accepted', deny: 'accepted' },
  } as const;

  it.each(SPECIAL_PURPOSE)('%s (%s) is %s', async (address, _range, kind) => {
    for (const privateRanges of ['allow', 'deny'] as const) {
      for (const hostname of [address.includes(':') ? `[${address}]` : address, 'db.example.com']) {
        const resolve = resolverOf({ 'db.example.com': [address] });
        const outcome = await checkOrigin(hostname, { privateRanges, resolve }).then(
          () => 'accepted',
          (error: unknown) => (error instanceof Problem ? error.code : String(error)),
        );
        expect(outcome, `${hostname} under ${privateRanges}`).toBe(expected[kind][privateRanges]);
      }
    }
  });
});

describe('host names that are not host names', () => {
  const invalid = [
    ['', 'empty'],
    [' ', 'a space'],
    ['db example.com', 'a space inside'],
    [' db.example.com', 'leading space'],
    ['db_1.example.com', 'an underscore'],
    ['https://db.example.com', 'a URL'],
    ['db.example.com/postgres', 'a path'],
    ['db.example.com:5432', 'a port'],
    ['1.2.3.4:5432', 'an IPv4 address with a port'],
    ['[::1]:5432', 'an IPv6 address with a port'],
    ['user@db.example.com', 'user@host'],
    ['-db.example.com', 'a leading hyphen'],
    ['db-.example.com', 'a trailing hyphen'],
    ['a..b', 'an empty label'],
    ['.example.com', 'a leading dot'],
    ['db.example.com..', 'two trailing dots'],
    [`${'a'.repeat(64)}.com`, 'a 64-character label'],
    [`${'abcdefghi.'.repeat(25)}abcd`, 'more than 253 characters'],
    ['127.1', 'a shortened IPv4 address'],
    ['2130706433', 'an IPv4 address as one number'],
    ['999.1.1.1', 'an IPv4 address out of range'],
    ['[db.example.com]', 'a name in brackets'],
    ['fe80::1%eth0', 'an IPv6 address with a zone'],
    ['dB\u00e9.example.com', 'a non-ASCII letter'],
  ] as const;

  it.each(invalid)('%j (%s) is refused before any DNS lookup', async (hostname) => {
    const problem = await refusal(
      checkOrigin(hostname, { privateRanges: 'allow', resolve: noDns }),
    );
    expect(problem.code).toBe('origin.invalid_hostname');
    expect(problem.message).toContain(`"${hostname}"`);
  });

  it('253 characters is still a host name', async () => {
    const hostname = `${'abcdefghi.'.repeat(25)}abc`;
    expect(hostname).toHaveLength(253);
    const resolve = resolverOf({ [hostname]: ['93.184.216.34'] });
    await expect(checkOrigin(hostname, { privateRanges: 'allow', resolve })).resolves.toBeDefined();
  });
});

describe('names that do not resolve', () => {
  it('a name the resolver does not know', async () => {
    const problem = await refusal(
      checkOrigin('db.example.com', { privateRanges: 'allow', resolve: resolverOf({}) }),
    );
    expect(problem.code).toBe('origin.unresolvable');
    expect(problem.message).toBe('db.example.com does not resolve (ENOTFOUND)');
  });

  it('a name with no addresses', async () => {
    const resolve = resolverOf({ 'db.example.com': [] });
    const problem = await refusal(
      checkOrigin('db.example.com', { privateRanges: 'allow', resolve }),
    );
    expect(problem.code).toBe('origin.unresolvable');
  });

  it('a resolver that never answers gives up at the timeout', async () => {
    const started = performance.now();
    const problem = await refusal(
      checkOrigin('slow.example.com', {
        privateRanges: 'allow',
        timeoutMs: 200,
        resolve: () => new Promise<string[]>(() => {}),
      }),
    );
    expect(problem.code).toBe('origin.unresolvable');
    expect(problem.message).toBe('slow.example.com did not resolve within 200 ms');
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe('the real resolver', () => {
  it('localhost resolves to loopback: allowed by default, refused under deny', async () => {
    const { addresses } = await checkOrigin('localhost', { privateRanges: 'allow' });
    expect(addresses.length).toBeGreaterThan(0);
    expect(addresses.every(isPrivateAddress)).toBe(true);
    const problem = await refusal(checkOrigin('localhost', { privateRanges: 'deny' }));
    expect(problem.code).toBe('origin.private_address');
    expect(problem.message).toMatch(/^localhost resolves to .+, a loopback address; /);
  });

  it('a name under .invalid does not resolve', async () => {
    const problem = await refusal(
      checkOrigin('does-not-exist.invalid', { privateRanges: 'allow', timeoutMs: 2_000 }),
    );
    expect(problem.code).toBe('origin.unresolvable');
    expect(problem.message).toMatch(
      /^does-not-exist\.invalid (does not resolve|did not resolve within)/,
    );
  });
});

describe('the helpers the edge re-checks with at connect time', () => {
  it.each(forbidden)('%s is forbidden (%s)', (address) => {
    expect(isForbiddenAddress(address)).toBe(true);
  });

  it.each(privateAddresses)('%s is private, not forbidden (%s)', (address) => {
    expect(isPrivateAddress(address)).toBe(true);
    expect(isForbiddenAddress(address)).toBe(false);
  });

  it.each(publicAddresses)('%s is neither', (address) => {
    expect(isForbiddenAddress(address)).toBe(false);
    expect(isPrivateAddress(address)).toBe(false);
  });

  it('a host name is not silently passed as safe', () => {
    expect(() => isForbiddenAddress('db.example.com')).toThrow(TypeError);
    expect(() => isPrivateAddress('fe80::1%eth0')).toThrow(TypeError);
  });
});

describe('normalizeHostname', () => {
  it.each([
    ['DB.Example.COM.', 'db.example.com'],
    ['[::1]', '::1'],
    ['[2001:DB8::1]', '2001:db8::1'],
    ['bücher.ch', 'xn--bcher-kva.ch'],
    ['Straße.example', 'xn--strae-oqa.example'],
  ])('%s is stored as %s', (input, stored) => {
    expect(normalizeHostname(input)).toBe(stored);
  });
});
