// SSRF guard for cache origins: hostname syntax, DNS with a timeout, then the address ranges.
//
// The control plane checks an origin when a cache is created or changed, but DNS can change
// afterwards (DNS rebinding: a name that resolved to a public address now answers
// 169.254.169.254). The edge must therefore call `isForbiddenAddress` / `isPrivateAddress` again
// on the address it is about to connect to, every time it connects; this check alone is not enough.
import { lookup } from 'node:dns/promises';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { Problem } from '../problem.ts';

export interface OriginGuardOptions {
  /** `deny` is for multi-tenant operators (`ORIGIN_PRIVATE=deny`): tenants must not reach the operator's own network. */
  privateRanges: 'allow' | 'deny';
  timeoutMs?: number;
  /** Tests inject a resolver; production uses the system resolver (`getaddrinfo`), as the edge's connect does. */
  resolve?: (host: string) => Promise<string[]>;
}

const DEFAULT_TIMEOUT_MS = 3_000;

type Range = readonly [address: string, prefix: number];

/**
 * Always refused, whatever the operator says. IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d)
 * IPv6 forms are turned into their IPv4 address before the check, so every IPv4 row covers them too.
 *
 * | range              | why                                                                     |
 * |--------------------|-------------------------------------------------------------------------|
 * | 169.254.0.0/16     | IPv4 link-local; AWS, GCP, Azure, Oracle metadata at 169.254.169.254    |
 * | 100.100.100.200/32 | Alibaba Cloud metadata (inside CGNAT, so it must win over "private")    |
 * | fe80::/10          | IPv6 link-local                                                         |
 * | fd00:ec2::254/128  | AWS metadata over IPv6 (inside fc00::/7, so it must win over "private") |
 * | 0.0.0.0/8          | "this network"; connecting to 0.0.0.0 reaches the local host            |
 * | ::/128             | unspecified; connecting to :: reaches the local host                    |
 * | 224.0.0.0/4        | IPv4 multicast: never a database                                        |
 * | ff00::/8           | IPv6 multicast: never a database                                        |
 * | 255.255.255.255/32 | limited broadcast                                                       |
 * | 240.0.0.0/4        | reserved ("class E"): never a routable database                          |
 *
 * IPv4-compatible (::a.b.c.d), NAT64 local-use (64:ff9b:1::/48) and 6to4 (2002::/16) addresses
 * also embed an IPv4 host and are judged as that host.
 */
const FORBIDDEN: readonly { reason: string; ranges: readonly Range[] }[] = [
  {
    reason: 'a link-local/cloud-metadata address',
    ranges: [
      ['169.254.0.0', 16],
      ['100.100.100.200', 32],
      ['fe80::', 10],
      ['fd00:ec2::254', 128],
    ],
  },
  {
    reason: 'an unspecified ("this host") address',
    ranges: [
      ['0.0.0.0', 8],
      ['::', 128],
    ],
  },
  {
    reason: 'a multicast address',
    ranges: [
      ['224.0.0.0', 4],
      ['ff00::', 8],
    ],
  },
  { reason: 'the broadcast address', ranges: [['255.255.255.255', 32]] },
  { reason: 'a reserved address', ranges: [['240.0.0.0', 4]] },
];

/** Loopback and private networks: fine for a self-hoster's own database, refused under `deny`. */
const PRIVATE: readonly { reason: string; ranges: readonly Range[] }[] = [
  {
    reason: 'a loopback address',
    ranges: [
      ['127.0.0.0', 8],
      ['::1', 128],
    ],
  },
  {
    reason: 'a private-network address',
    ranges: [
      ['10.0.0.0', 8],
      ['172.16.0.0', 12],
      ['192.168.0.0', 16],
      ['100.64.0.0', 10],
      ['198.18.0.0', 15],
      ['192.0.0.0', 24],
      ['fc00::', 7],
    ],
  },
];

function toBlockLists(table: readonly { reason: string; ranges: readonly Range[] }[]) {
  return table.map(({ reason, ranges }) => {
    const list = new BlockList();
    for (const [address, prefix] of ranges)
      list.addSubnet(address, prefix, isIPv4(address) ? 'ipv4' : 'ipv6');
    return { reason, list };
  });
}

const forbiddenLists = toBlockLists(FORBIDDEN);
const privateLists = toBlockLists(PRIVATE);

/** The eight 16-bit groups of a valid IPv6 address (without zone id), `::` and a dotted tail expanded. */
function ipv6Groups(ip: string): number[] {
  let text = ip.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const zeros =
    tail === undefined ? [] : Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  return [...headGroups, ...zeros, ...tailGroups].map((group) => parseInt(group, 16));
}

/**
 * An IPv4 address in IPv4 form: IPv4-mapped (::ffff:0:0/96) and NAT64 well-known-prefix (64:ff9b::/96)
 * addresses reach the IPv4 host they embed, so they are judged as that host.
 */
function normalizeAddress(ip: string): { address: string; family: 'ipv4' | 'ipv6' } {
  if (isIPv4(ip)) return { address: ip, family: 'ipv4' };
  if (!isIPv6(ip) || ip.includes('%')) throw new TypeError(`not an IP address: ${ip}`);
  const groups = ipv6Groups(ip);
  const [g0, g1, g2, g3, g4, g5, g6 = 0, g7 = 0] = groups;
  const v4 = (high: number, low: number) => `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  const zeroPrefix = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0;
  const mapped = zeroPrefix && g5 === 0xffff;
  const compatible = zeroPrefix && g5 === 0 && (g6 !== 0 || g7 > 1);
  const nat64 =
    g0 === 0x64 && g1 === 0xff9b && ((g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) || g2 === 1);
  if (mapped || compatible || nat64) return { address: v4(g6, g7), family: 'ipv4' };
  if (g0 === 0x2002) return { address: v4(g1 ?? 0, g2 ?? 0), family: 'ipv4' };
  return { address: ip, family: 'ipv6' };
}

function matchReason(
  lists: readonly { reason: string; list: BlockList }[],
  ip: string,
): string | undefined {
  const { address, family } = normalizeAddress(ip);
  return lists.find(({ list }) => list.check(address, family))?.reason;
}

/** True for addresses Edgegate never connects to (link-local, metadata, unspecified, multicast, broadcast). */
export function isForbiddenAddress(ip: string): boolean {
  return matchReason(forbiddenLists, ip) !== undefined;
}

/** True for loopback and private-network addresses (refused only when the operator sets `ORIGIN_PRIVATE=deny`). */
export function isPrivateAddress(ip: string): boolean {
  return matchReason(privateLists, ip) !== undefined;
}

/**
 * The check the edge runs on each address it is about to connect to. Edge threads load it by name
 * (a function cannot be sent to a thread), so it takes plain data.
 */
export function edgeAddressGuard(privateRanges: 'allow' | 'deny'): (address: string) => boolean {
  return privateRanges === 'deny'
    ? (address) => !isForbiddenAddress(address) && !isPrivateAddress(address)
    : (address) => !isForbiddenAddress(address);
}

function refuse(code: string, message: string): Problem {
  return new Problem(code, 422, message, { errors: [{ path: 'hostname', message }] });
}

/** The IP literal inside `host` (brackets removed), or undefined when `host` is not one. */
function ipLiteral(host: string): string | undefined {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIPv4(bare) || (isIPv6(bare) && !bare.includes('%'))) return bare;
  return undefined;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** Why `host` is not an RFC 1123 host name, or undefined when it is one. */
function hostnameSyntaxError(host: string): string | undefined {
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name === '') return 'is empty';
  if (name.length > 253) return 'is longer than 253 characters';
  const labels = name.split('.');
  if (!labels.every((label) => LABEL.test(label))) {
    return 'is not a host name: each dot-separated part must be 1–63 letters, digits or hyphens, not starting or ending with a hyphen (no scheme, port, path, user or spaces)';
  }
  // getaddrinfo reads names like 127.1 or 2130706433 as IPv4 addresses; ask for the dotted quad instead.
  if (/^\d+$/.test(labels.at(-1) ?? '')) {
    return 'looks like an IPv4 address but is not one in a.b.c.d form';
  }
  return undefined;
}

async function resolveWithTimeout(
  host: string,
  resolve: (host: string) => Promise<string[]>,
  timeoutMs: number,
): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(refuse('origin.unresolvable', `${host} did not resolve within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    const addresses = await Promise.race([resolve(host), timeout]);
    if (addresses.length === 0) {
      throw refuse('origin.unresolvable', `${host} does not resolve to any address`);
    }
    return addresses;
  } catch (error) {
    if (error instanceof Problem) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw refuse('origin.unresolvable', `${host} does not resolve${code ? ` (${code})` : ''}`);
  } finally {
    clearTimeout(timer);
  }
}

async function systemResolve(host: string): Promise<string[]> {
  const results = await lookup(host, { all: true, verbatim: true });
  return results.map((result) => result.address);
}

/**
 * Checks that `hostname` is a host name or IP literal whose every address Edgegate may connect to,
 * and returns those addresses. Throws a 422 `Problem` saying what was refused and why.
 */
export async function checkOrigin(
  hostname: string,
  options: OriginGuardOptions,
): Promise<{ addresses: string[] }> {
  const literal = ipLiteral(hostname);
  let addresses: string[];
  if (literal !== undefined) {
    addresses = [literal];
  } else {
    const syntaxError = hostnameSyntaxError(hostname);
    if (syntaxError) throw refuse('origin.invalid_hostname', `"${hostname}" ${syntaxError}`);
    addresses = await resolveWithTimeout(
      hostname,
      options.resolve ?? systemResolve,
      options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    );
  }

  const refused = (address: string, reason: string) =>
    literal !== undefined
      ? `${address} is ${reason}`
      : `${hostname} resolves to ${address}, ${reason}`;
  for (const address of addresses) {
    const reason = matchReason(forbiddenLists, address);
    if (reason) {
      throw refuse(
        'origin.forbidden_address',
        `${refused(address, reason)}; Edgegate never connects there`,
      );
    }
  }
  if (options.privateRanges === 'deny') {
    for (const address of addresses) {
      const reason = matchReason(privateLists, address);
      if (reason) {
        throw refuse(
          'origin.private_address',
          `${refused(address, reason)}; this Edgegate server does not allow loopback or private-network origins (ORIGIN_PRIVATE=deny)`,
        );
      }
    }
  }
  return { addresses };
}
