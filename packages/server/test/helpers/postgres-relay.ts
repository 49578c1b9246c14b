// A TCP relay to a Postgres server that a test can take down (every connection dropped, new ones
// refused) and bring back on the same port: how a store or origin becomes unreachable mid-test.
import net from 'node:net';

/** A TCP relay to the machine's Postgres that can be taken down and brought back on its port. */
export function postgresRelay(target: URL) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  let port = 0;
  const up = () =>
    new Promise<number>((resolve, reject) => {
      server = net.createServer((client) => {
        const origin = net.connect(Number(target.port || 5432), target.hostname);
        for (const socket of [client, origin]) {
          sockets.add(socket);
          socket.on('close', () => sockets.delete(socket));
          socket.on('error', () => {
            client.destroy();
            origin.destroy();
          });
        }
        client.pipe(origin).pipe(client);
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as net.AddressInfo).port;
        resolve(port);
      });
    });
  const down = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      if (server === null) return resolve();
      server.close(() => resolve());
      server = null;
    });
  return { up, down };
}
