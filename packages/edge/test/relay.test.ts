// The relay of one session's bytes (core/relay.ts) over real loopback sockets: a client that floods
// an origin that does not read is not read further (its 'drain' included), a writer's held answer
// keeps the origin paused whatever the client does, and everything arrives once both catch up.
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { Relay } from '../src/core/relay.ts';

// A connected pair: `near` is the edge's end, `far` the peer's.
async function socketPair(): Promise<{ near: net.Socket; far: net.Socket; close: () => void }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const far = net.connect(port, '127.0.0.1');
  const [near] = (await once(server, 'connection')) as [net.Socket];
  await once(far, 'connect');
  return {
    near,
    far,
    close: () => {
      near.destroy();
      far.destroy();
      server.close();
    },
  };
}

const MiB = 1024 * 1024;

describe('the relay of a session', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  // The edge's client link and origin link, with a session that sends what the client sends on to
  // the origin, and `toClient` bytes the other way.
  async function session() {
    const client = await socketPair();
    const origin = await socketPair();
    closers.push(client.close, origin.close);
    let written = 0;
    const relay = new Relay(client.near, {
      onWritten: (bytes) => (written += bytes),
      onReleased: () => undefined,
    });
    relay.attachClient(client.near);
    relay.attachOrigin(origin.near);
    let fromClient = 0;
    client.near.on('data', (chunk: Buffer) => {
      fromClient += chunk.length;
      relay.toOrigin(chunk);
      relay.flush();
    });
    return {
      relay,
      client,
      origin,
      fromClient: () => fromClient,
      written: () => written,
    };
  }

  it('stops reading a client whose origin does not read, and a client drain does not restart it', async () => {
    const s = await session();
    s.origin.far.pause();
    const flood = Buffer.alloc(64 * MiB, 1);
    s.client.far.write(flood);
    await sleep(300);
    expect(s.client.near.isPaused()).toBe(true);
    const readWhileStuck = s.fromClient();
    expect(readWhileStuck).toBeLessThan(48 * MiB);

    // The client's own link fills up and drains, while the origin is still behind.
    s.client.far.pause();
    s.relay.push(Buffer.alloc(8 * MiB, 2));
    s.relay.flush();
    expect(s.client.near.writableNeedDrain).toBe(true);
    let received = 0;
    s.client.far.on('data', (chunk: Buffer) => (received += chunk.length));
    s.client.far.resume();
    await once(s.client.near, 'drain');
    for (let waited = 0; received < 8 * MiB && waited < 5000; waited += 20) await sleep(20);
    expect(received).toBe(8 * MiB);
    expect(s.written()).toBe(8 * MiB);
    expect(s.client.near.isPaused(), 'the origin is still behind').toBe(true);
    expect(s.fromClient()).toBe(readWhileStuck);

    // The origin catches up: the client is read again, and every byte gets through.
    let atOrigin = 0;
    s.origin.far.on('data', (chunk: Buffer) => (atOrigin += chunk.length));
    s.origin.far.resume();
    for (let waited = 0; atOrigin < flood.length && waited < 10_000; waited += 20) await sleep(20);
    expect(atOrigin).toBe(flood.length);
  });

  it('keeps the origin paused while a writer’s answer is held, whatever the client does', async () => {
    const s = await session();
    let publish = (): void => undefined;
    s.relay.holdFor(new Promise<void>((resolve) => (publish = resolve)));
    expect(s.origin.near.isPaused()).toBe(true);
    s.relay.push(Buffer.from('held answer'));
    s.relay.flush();
    expect(s.written(), 'nothing goes out while held').toBe(0);

    // A client drain (its link had filled up before the hold) must not let the origin in.
    s.client.near.emit('drain');
    expect(s.origin.near.isPaused()).toBe(true);

    let received = '';
    s.client.far.on('data', (chunk: Buffer) => (received += chunk.toString()));
    publish();
    await sleep(50);
    expect(s.origin.near.isPaused()).toBe(false);
    expect(received).toBe('held answer');
  });
});
