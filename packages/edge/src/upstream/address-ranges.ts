// Which IP addresses Edgegate may connect to: the one classification behind the API's origin guard,
// the connect page's credential test, webhook deliveries and the edge at every origin connect.
//
// The ranges come from ipaddr.js (the library express's proxy-addr and Fastify use), which names
// every range of the IANA IPv4 and IPv6 special-purpose registries; this file only decides what each
// name means for us. An IPv6 address that embeds an IPv4 one (mapped, translated, NAT64, 6to4,
// Teredo, the deprecated IPv4-compatible form) reaches that IPv4 host, so it is judged by it too.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * `forbidden`: never (link-local and metadata, unspecified, multicast, broadcast, discard-only).
 * `private`: loopback, private networks and every other special-purpose range; only where the
 * operator allows them (ORIGIN_PRIVATE=allow, the default). `public`: global unicast.
 */
export type AddressVerdict =
  { kind: 'forbidden'; reason: string } | { kind: 'private'; reason: string } | { kind: 'public' };

type Judged = Exclude<AddressVerdict, { kind: 'public' }>;
const forbidden = (reason: string): Judged => ({ kind: 'forbidden', reason });
const special = (reason: string): Judged => ({ kind: 'private', reason });
const PUBLIC: AddressVerdict = { kind: 'public' };

const METADATA = forbidden('a link-local/cloud-metadata address');
/** Metadata services inside ranges that are otherwise only private (CGNAT, ULA). */
const METADATA_ADDRESSES = new Set(['100.100.100.200', 'fd00:ec2::254']);

/** Each ipaddr.js IPv4 range name; a name added by a later version is `private` until placed here. */
const IPV4: Record<string, AddressVerdict> = {
  unicast: PUBLIC,
  unspecified: forbidden('an unspecified ("this network") address'),
  broadcast: forbidden('the broadcast address'),
  multicast: forbidden('a multicast address'),
  linkLocal: METADATA,
  loopback: special('a loopback address'),
  private: special('a private-network address'),
  carrierGradeNat: special('a private-network address (shared, carrier-grade NAT)'),
  // 192.0.0/24, 192.0.2/24, 192.88.99/24, 198.18/15, 198.51.100/24, 203.0.113/24; 240/4 below.
  reserved: special('a reserved, documentation or benchmarking address'),
  as112: special('an AS112 DNS sink address'),
  amt: special('an AMT relay anycast address'),
};

/** Each ipaddr.js IPv6 range name, for addresses that embed no IPv4 host. */
const IPV6: Record<string, AddressVerdict> = {
  unicast: PUBLIC,
  unspecified: forbidden('an unspecified ("this host") address'),
  linkLocal: METADATA,
  multicast: forbidden('a multicast address'),
  discard: forbidden('a discard-only address (100::/64)'),
  loopback: special('a loopback address'),
  uniqueLocal: special('a private-network address (unique local, fc00::/7)'),
  deprecatedSiteLocal: special('a site-local address (fec0::/10)'),
  // 2001::/23 IETF protocol assignments, 2001:db8::/32 and 3fff::/20 documentation.
  reserved: special('a reserved or documentation address'),
  benchmarking: special('a benchmarking address (2001:2::/48)'),
  amt: special('an AMT relay address'),
  as112v6: special('an AS112 DNS sink address'),
  deprecatedOrchid: special('an ORCHID address'),
  orchid2: special('an ORCHIDv2 address'),
  droneRemoteIdProtocolEntityTags: special('a drone remote ID tag (DET) address'),
  segmentRouting: special('a segment-routing SID (5f00::/16)'),
};

/** The IPv4 hosts an IPv6 address can reach through its embedding, and the range's own verdict. */
function embedded(address: ipaddr.IPv6): { hosts: ipaddr.IPv4[]; own: AddressVerdict } | undefined {
  const p = address.parts as [number, number, number, number, number, number, number, number];
  const v4 = (high: number, low: number) =>
    new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
  const last = v4(p[6], p[7]);
  switch (address.range()) {
    case 'ipv4Mapped': // ::ffff:a.b.c.d
    case 'rfc6145': // ::ffff:0:a.b.c.d, IPv4-translated
      return { hosts: [last], own: PUBLIC };
    case 'rfc6052':
      // 64:ff9b::/96 carries the host in its last 32 bits. The local-use 64:ff9b:1::/48 may use any
      // RFC 6052 prefix length, so the /48 position (bits 48–87 around the u octet) is judged too,
      // unless it is all zero, as it is in the /96 form.
      if (p[2] === 0) return { hosts: [last], own: PUBLIC };
      return {
        hosts:
          p[3] === 0 && p[4] === 0 && p[5] === 0
            ? [last]
            : [last, v4(p[3], ((p[4] & 0xff) << 8) | (p[5] >> 8))],
        own: special('a local-use NAT64 address (64:ff9b:1::/48)'),
      };
    case '6to4': // 2002:AABB:CCDD::/48
      return { hosts: [v4(p[1], p[2])], own: special('a 6to4 address (2002::/16)') };
    case 'teredo': // 2001:0:<server v4>:<flags>:<port>:<client v4, inverted>
      return {
        hosts: [v4(p[2], p[3]), v4(~p[6] & 0xffff, ~p[7] & 0xffff)],
        own: special('a Teredo address (2001::/32)'),
      };
    default:
      // ::a.b.c.d, IPv4-compatible (deprecated), not named by ipaddr.js: :: and ::1 are not hosts.
      if (p.slice(0, 6).every((g) => g === 0) && (p[6] !== 0 || p[7] > 1))
        return { hosts: [last], own: special('an IPv4-compatible address (::/96, deprecated)') };
      return undefined;
  }
}

const SEVERITY = { public: 0, private: 1, forbidden: 2 } as const;
/** The most severe verdict; on a tie the later one, so an embedded host's reason beats the range's. */
const worst = (verdicts: AddressVerdict[]) =>
  verdicts.reduce((a, b) => (SEVERITY[b.kind] >= SEVERITY[a.kind] ? b : a));

function classifyIPv4(address: ipaddr.IPv4): AddressVerdict {
  if (METADATA_ADDRESSES.has(address.toString())) return METADATA;
  const range = address.range();
  // ipaddr.js counts 240/4 ("class E") among its reserved ranges: never a routable host.
  if (range === 'reserved' && address.octets[0]! >= 240) return forbidden('a reserved address');
  return IPV4[range] ?? special(`a special-purpose address (${range})`);
}

/**
 * What Edgegate makes of `ip` (an IPv4 or IPv6 address, no zone id). Throws a TypeError for
 * anything else, so a host name is never taken for a safe address.
 */
export function classifyAddress(ip: string): AddressVerdict {
  if (isIP(ip) === 0 || ip.includes('%')) throw new TypeError(`not an IP address: ${ip}`);
  const parsed = ipaddr.parse(ip);
  if (parsed.kind() === 'ipv4') return classifyIPv4(parsed as ipaddr.IPv4);
  const address = parsed as ipaddr.IPv6;
  if (METADATA_ADDRESSES.has(address.toString())) return METADATA;
  const carried = embedded(address);
  if (carried) {
    const hosts = carried.hosts.map(classifyIPv4);
    const judged = worst([carried.own, ...hosts]);
    if (judged === carried.own || judged.kind === 'public') return judged;
    const host = carried.hosts[hosts.indexOf(judged)]!.toString();
    return { ...judged, reason: `${judged.reason} (${host}, embedded in an IPv6 address)` };
  }
  return IPV6[address.range()] ?? special(`a special-purpose address (${address.range()})`);
}

/** Whether Edgegate may connect to `ip` under the operator's ORIGIN_PRIVATE. */
export function mayConnectTo(ip: string, privateRanges: 'allow' | 'deny'): boolean {
  const { kind } = classifyAddress(ip);
  return kind === 'public' || (kind === 'private' && privateRanges === 'allow');
}

/**
 * The edge's check of each address it is about to connect to. Edge threads load it by module and
 * name (a function cannot be sent to a thread), so it takes plain data.
 */
export function originAddressGuard(privateRanges: 'allow' | 'deny'): (address: string) => boolean {
  return (address) => {
    try {
      return mayConnectTo(address, privateRanges);
    } catch {
      return false; // what cannot even be classified is not connected to
    }
  };
}
