// The demo's origin database: PGlite (Postgres in WASM, in memory) with a small sample schema,
// spoken to over the Postgres wire protocol on a loopback port. Framing uses the edge's own codec;
// every query runs in PGlite (`execProtocolRaw`), which answers with its own protocol bytes.
import { createServer, type Server, type Socket } from 'node:net';
import { PGlite } from '@electric-sql/pglite';
import { pg } from '@edgegate/edge';

const SAMPLE = `
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price_cents int NOT NULL);
INSERT INTO products VALUES
  (1, 'Espresso cup', 1200), (2, 'Pour-over kettle', 4900), (3, 'Burr grinder', 13900),
  (4, 'Coffee scale', 2900), (5, 'Paper filters (100)', 600);
CREATE TABLE orders (id int PRIMARY KEY, product_id int NOT NULL REFERENCES products,
  quantity int NOT NULL, ordered_at timestamptz NOT NULL DEFAULT now());
INSERT INTO orders (id, product_id, quantity) VALUES (1, 3, 1), (2, 5, 4), (3, 1, 2), (4, 2, 1);
`;

export interface DemoOrigin {
  port: number;
  close(): Promise<void>;
}

/** Messages that end a unit of work: the client waits for an answer after each. */
const UNIT_ENDS = new Set(['query', 'sync', 'flush', 'functionCall']);

export async function startDemoOrigin(port = 0): Promise<DemoOrigin> {
  const db = await PGlite.create();
  await db.exec(SAMPLE);
  const version = (await db.query<{ v: string }>('SHOW server_version')).rows[0]?.v ?? '17';
  // One engine, one session: units of different clients take turns, never interleave.
  let turn: Promise<unknown> = Promise.resolve();
  const sockets = new Set<Socket>();

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const parser = new pg.FrontendParser();
    let pending: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      try {
        parser.parse(chunk, (message) => {
          switch (message.kind) {
            case 'sslRequest':
            case 'gssEncRequest':
              socket.write(pg.serialize.sslResponse(false));
              return;
            case 'startupMessage':
              // The demo trusts every user, like a local `trust` line in pg_hba.conf.
              socket.write(
                Buffer.concat([
                  pg.serialize.authenticationOk(),
                  pg.serialize.parameterStatus('server_version', version),
                  pg.serialize.parameterStatus('server_encoding', 'UTF8'),
                  pg.serialize.parameterStatus('client_encoding', 'UTF8'),
                  pg.serialize.parameterStatus('DateStyle', 'ISO, MDY'),
                  pg.serialize.parameterStatus('integer_datetimes', 'on'),
                  pg.serialize.parameterStatus('standard_conforming_strings', 'on'),
                  pg.serialize.parameterStatus('TimeZone', 'UTC'),
                  pg.serialize.backendKeyData(process.pid, 0),
                  pg.serialize.readyForQuery('I'),
                ]),
              );
              return;
            case 'cancelRequest':
            case 'terminate':
              socket.end();
              return;
            default: {
              pending.push(Buffer.from(message.frame));
              if (!UNIT_ENDS.has(message.kind)) return;
              const unit = pending;
              pending = [];
              turn = turn.then(async () => {
                const answers: Uint8Array[] = [];
                for (const frame of unit) answers.push(await db.execProtocolRaw(frame));
                if (!socket.destroyed) socket.write(Buffer.concat(answers));
              });
              turn.catch(() => socket.destroy());
            }
          }
        });
      } catch {
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as { port: number }).port,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => server.close(r));
      await db.close();
    },
  };
}
