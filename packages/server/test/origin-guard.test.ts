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
  'fec0::1',
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
