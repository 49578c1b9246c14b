// SSRF guard for cache origins: hostname syntax, DNS with a timeout, then the address ranges, as
// classified once for every part of Edgegate in @edgegate/edge/address-ranges.
//
// The control plane checks an origin when a cache is created or changed, but DNS can change
// afterwards (DNS rebinding: a name that resolved to a public address now answers
// 169.254.169.254). The edge therefore checks the address it is about to connect to again, every
// time it connects (originAddressGuard), and the connect page dials the address checked here.
import { lookup } from 'node:dns/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { classifyAddress } from '@edgegate/edge/address-ranges';
import { Problem } from '../problem.ts';

export interface OriginGuardOptions {
  /** `deny` is for multi-tenant operators (`ORIGIN_PRIVATE=deny`): tenants must not reach the operator's own network. */
  privateRanges: 'allow' | 'deny';
  timeoutMs?: number;
  /** Tests inject a resolver; production uses the system resolver (`getaddrinfo`), as the edge's connect does. */
  resolve?: (host: string) => Promise<string[]>;
}

const DEFAULT_TIMEOUT_MS = 3_000;

/** Why Edgegate never connects to `ip` (link-local, metadata, unspecified, multicast…), if it does not. */
function forbiddenReason(ip: string): string | undefined {
  const verdict = classifyAddress(ip);
  return verdict.kind === 'forbidden' ? verdict.reason : undefined;
}

/** Why `ip` is a loopback, private or other special-purpose address, refused under `deny`, if it is. */
function privateReason(ip: string): string | undefined {
  const verdict = classifyAddress(ip);
  return verdict.kind === 'private' ? verdict.reason : undefined;
}

/** True for addresses Edgegate never connects to (link-local, metadata, unspecified, multicast, broadcast, discard). */
export function isForbiddenAddress(ip: string): boolean {
  return forbiddenReason(ip) !== undefined;
}

/**
 * True for loopback, private-network and every other special-purpose address (documentation,
 * benchmarking, …), which are refused only when the operator sets `ORIGIN_PRIVATE=deny`.
 */
export function isPrivateAddress(ip: string): boolean {
  return privateReason(ip) !== undefined;
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
    const reason = forbiddenReason(address);
    if (reason) {
      throw refuse(
        'origin.forbidden_address',
        `${refused(address, reason)}; Edgegate never connects there`,
      );
    }
  }
  if (options.privateRanges === 'deny') {
    for (const address of addresses) {
      const reason = privateReason(address);
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
