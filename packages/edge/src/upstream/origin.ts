// Opens a connection to a cache's origin: TCP through the address guard, then TLS when the cache's
// `originTls` asks for it and the origin accepts (like libpq's sslmode=prefer/require: encrypted,
// certificate not verified).
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import net from 'node:net';
import tls from 'node:tls';
import * as codes from '../pg/protocol/codes.ts';
import { sslRequest } from '../pg/protocol/serializer.ts';

export type AddressGuard = (address: string) => boolean;

export class OriginError extends Error {}

const CONNECT_TIMEOUT_MS = 10_000;

export interface OriginTarget {
  hostname: string;
  port: number;
  originTls: 'disable' | 'prefer' | 'require';
  /** MySQL: the cache and the origin's connection id behind an edge connection id (for KILL). */
  cacheId?: string;
  connectionId?: number;
}

/** A connected socket to the origin, before the startup message. */
export async function connectOrigin(
  target: OriginTarget,
  guard: AddressGuard | null,
): Promise<net.Socket> {
  const socket = await tcpConnect(target, guard);
  if (target.originTls === 'disable') return socket;
  try {
    const answer = await askForTls(socket);
    if (answer === codes.SSLAccepted) return await startTls(socket, target.hostname);
    if (target.originTls === 'require') {
      throw new OriginError(
        'the origin does not accept TLS, and this cache requires it (originTls: require)',
      );
    }
    return socket;
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

/** A TCP connection to the origin through the address guard, for protocols that start TLS later. */
export function connectOriginTcp(
  target: OriginTarget,
  guard: AddressGuard | null,
): Promise<net.Socket> {
  return tcpConnect(target, guard);
}

/** TLS over an origin connection, when the protocol says so (certificate not verified, as prefer). */
export function upgradeOriginTls(socket: net.Socket, hostname: string): Promise<net.Socket> {
  return startTls(socket, hostname);
}

function tcpConnect(target: OriginTarget, guard: AddressGuard | null): Promise<net.Socket> {
  // An IP literal is never looked up, so the lookup hook below would not see it: check it here
  // (the API checked it when the cache was saved, but ORIGIN_PRIVATE may have changed since).
  const literal = target.hostname.replace(/^\[(.*)\]$/, '$1');
  if (guard !== null && net.isIP(literal) !== 0 && !guard(literal)) {
    return Promise.reject(
      new OriginError(`the origin ${target.hostname} is a private or reserved address`),
    );
  }
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: target.hostname,
      port: target.port,
      noDelay: true,
      // Checking the address DNS gives at connect time defeats DNS rebinding past the API's check.
      lookup: guard === null ? undefined : guardedLookup(guard),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new OriginError(`the origin ${target.hostname}:${target.port} did not answer within 10 s`),
      );
    }, CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        error instanceof OriginError
          ? error
          : new OriginError(
              `cannot reach the origin ${target.hostname}:${target.port}: ${error.code ?? error.message}`,
            ),
      );
    });
  });
}

function guardedLookup(guard: AddressGuard): net.LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error, '', 0);
      const allowed = addresses.filter((a) => guard(a.address));
      if (allowed.length === 0) {
        return callback(
          new OriginError(`the origin ${hostname} resolves only to private or reserved addresses`),
          '',
          0,
        );
      }
      if (options.all)
        return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, allowed);
      const first = allowed[0] as LookupAddress;
      callback(null, first.address, first.family);
    });
  };
}

function askForTls(socket: net.Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      cleanup();
      // Anything after the one-byte answer would have been sent before encryption: refuse it.
      if (chunk.length !== 1)
        reject(new OriginError('the origin answered the SSL request with extra bytes'));
      else resolve(chunk[0] as number);
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(
        new OriginError(
          `the origin closed the connection during TLS negotiation: ${error.message}`,
        ),
      );
    };
    const onClose = (): void => onError(new Error('closed'));
    const cleanup = (): void => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(sslRequest());
  });
}

function startTls(socket: net.Socket, hostname: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({
      socket,
      servername: net.isIP(hostname) === 0 ? hostname : undefined,
      rejectUnauthorized: false,
    });
    secure.once('secureConnect', () => {
      secure.removeAllListeners('error');
      resolve(secure);
    });
    secure.once('error', (error) =>
      reject(new OriginError(`TLS to the origin failed: ${error.message}`)),
    );
  });
}

/**
 * Sends a CancelRequest on a connection of its own, as a client does; Postgres answers nothing and
 * closes it. Failures are ignored: a cancel is best effort by design.
 */
export function sendCancel(target: Pick<OriginTarget, 'hostname' | 'port'>, frame: Buffer): void {
  const socket = net.connect({ host: target.hostname, port: target.port });
  const timer = setTimeout(() => socket.destroy(), CONNECT_TIMEOUT_MS);
  timer.unref();
  socket.on('error', () => socket.destroy());
  socket.on('close', () => clearTimeout(timer));
  socket.on('connect', () => socket.end(frame));
}
