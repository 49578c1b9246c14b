// A test edge for the MySQL login relay: one TCP listener whose connections log in through
// HandshakeRelay (origin first or client first, TLS at the edge optional), then are piped.
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { PacketParser, codes } from '../../src/mysql/protocol/index.ts';
import { HandshakeRelay } from '../../src/mysql/session/handshake.ts';
import type { AgreedLogin, HandshakeAction } from '../../src/mysql/session/handshake.ts';

/** The one cache id the test edge knows. */
export const CACHE_ID = 'cch_test';

export type Mode = 'origin first' | 'client first';

export interface TestEdge {
  server: net.Server;
  port: number;
  /** What each successful login agreed, in order. */
  logins: AgreedLogin[];
}

/** `origin` is where cache CACHE_ID points; any other cache id is refused as unknown. */
export async function startTestEdge(
  origin: { host: string; port: number },
  mode: Mode,
  tlsFiles: { key: Buffer; cert: Buffer } | null = null,
): Promise<TestEdge> {
  const logins: AgreedLogin[] = [];
  const options = { tls: tlsFiles !== null };
  const server = net.createServer((raw) => {
    let client: net.Socket = raw;
    const clientParser = new PacketParser();
    const originParser = new PacketParser();
    let relay: HandshakeRelay | null = null;
    let originSocket: net.Socket | null = null;
    let upgrade = false;
    const fail = () => {
      client.destroy();
      originSocket?.destroy();
    };
    const apply = (actions: HandshakeAction[]) => {
      for (const action of actions) {
        switch (action.kind) {
          case 'toClient':
            client.write(action.bytes);
            break;
          case 'toOrigin':
            originSocket?.write(action.bytes);
            break;
          case 'openOrigin':
            if (action.cacheId !== CACHE_ID) {
              apply(
                (relay as HandshakeRelay).refuse(
                  codes.ER_ACCESS_DENIED_ERROR,
                  '28000',
                  `there is no cache "${action.cacheId}"`,
                ),
              );
            } else connectOrigin();
            break;
          case 'authenticated':
            logins.push(action.login);
            client.removeAllListeners('data');
            originSocket?.removeAllListeners('data');
            client.pipe(originSocket as net.Socket).pipe(client);
            break;
          case 'failed':
            client.end();
            originSocket?.end();
            break;
          case 'startClientTls':
            upgrade = true;
            break;
        }
      }
    };
    const connectOrigin = () => {
      originSocket = net.connect(origin.port, origin.host);
      originSocket.on('error', fail);
      originSocket.on('data', (chunk) =>
        originParser.parse(chunk, (packet) => {
          if (relay === null) {
            relay = HandshakeRelay.originFirst(packet.payload, options);
            apply(relay.greet());
          } else apply(relay.onOriginPacket(packet));
        }),
      );
    };
    const onClientData = (chunk: Buffer) => {
      clientParser.parse(chunk, (packet) => {
        apply((relay as HandshakeRelay).onClientPacket(packet));
        return upgrade ? 'pause' : undefined;
      });
      if (!upgrade) return;
      // The bytes after the SSLRequest are the TLS handshake (mysql2 sends its ClientHello in the
      // same write): the TLS layer reads them first, then the rest of the socket.
      upgrade = false;
      raw.removeAllListeners('data');
      const stream = new Duplex({
        read() {},
        write(chunk, _encoding, done) {
          raw.write(chunk, done);
        },
        final(done) {
          raw.end();
          done();
        },
      });
      stream.push(clientParser.takeHeld());
      raw.on('data', (bytes) => stream.push(bytes));
      raw.on('end', () => stream.push(null));
      client = new tls.TLSSocket(stream as net.Socket, { isServer: true, ...(tlsFiles as object) });
      client.on('error', fail);
      client.on('data', onClientData);
    };
    raw.on('error', fail);
    raw.on('data', onClientData);
    if (mode === 'origin first') connectOrigin();
    else {
      relay = HandshakeRelay.clientFirst(options);
      apply(relay.greet());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, port: (server.address() as net.AddressInfo).port, logins };
}
