// A scripted MySQL client over a raw socket: logs in with mysql_native_password itself (answering
// the origin's AuthSwitchRequest as the edge relays it), then lets a test write any bytes, well
// formed or not, and read the packets that come back.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { PacketParser, codes, serialize, type Packet } from '../../src/mysql/protocol/index.ts';

const CLIENT_CAPABILITIES =
  codes.CLIENT_LONG_PASSWORD |
  codes.CLIENT_LONG_FLAG |
  codes.CLIENT_CONNECT_WITH_DB |
  codes.CLIENT_PROTOCOL_41 |
  codes.CLIENT_TRANSACTIONS |
  codes.CLIENT_SECURE_CONNECTION |
  codes.CLIENT_MULTI_RESULTS |
  codes.CLIENT_PS_MULTI_RESULTS |
  codes.CLIENT_PLUGIN_AUTH |
  codes.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;

/** mysql_native_password's answer: SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))). */
export function nativePasswordResponse(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const sha1 = (data: Buffer | string) => createHash('sha1').update(data).digest();
  const stage1 = sha1(password);
  const mask = sha1(Buffer.concat([scramble.subarray(0, 20), sha1(stage1)]));
  return Buffer.from(stage1.map((byte, i) => byte ^ (mask[i] as number)));
}

export class RawMysqlClient {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  readonly #parser = new PacketParser();
  readonly #packets: Packet[] = [];
  #wake: (() => void) | null = null;
  #ended = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#parser.parse(chunk, (packet) => {
          this.#packets.push({ ...packet, payload: Buffer.from(packet.payload) });
          return undefined;
        });
      } catch {
        socket.destroy();
      }
      this.#wake?.();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.#ended = true;
        this.#wake?.();
        resolve();
      }),
    );
  }

  static connect(port: number): Promise<RawMysqlClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () =>
        resolve(new RawMysqlClient(socket)),
      );
      socket.once('error', reject);
    });
  }

  /** Connects and logs in as `user` (CACHE_ID-user) with mysql_native_password. */
  static async login(
    port: number,
    login: { user: string; password?: string; database?: string },
  ): Promise<RawMysqlClient> {
    const client = await RawMysqlClient.connect(port);
    const greeting = await client.next();
    const password = login.password ?? '';
    // The greeting's scramble: 8 bytes after the version, connection id; 12 more after the flags.
    const version = greeting.payload.indexOf(0, 1);
    const first = greeting.payload.subarray(version + 5, version + 13);
    const second = greeting.payload.subarray(version + 32, version + 32 + 12);
    const scramble = Buffer.concat([first, second]);
    client.write(
      serialize.packet(
        1,
        serialize.handshakeResponse41({
          capabilities: CLIENT_CAPABILITIES,
          mariadbCapabilities: 0,
          maxPacketSize: 1 << 30,
          characterSet: codes.UTF8MB4_GENERAL_CI,
          username: login.user,
          authResponse: nativePasswordResponse(password, scramble),
          database: login.database ?? null,
          authPluginName: codes.MYSQL_NATIVE_PASSWORD,
          connectAttributes: null,
        }),
      ),
    );
    for (;;) {
      const answer = await client.next();
      const header = answer.payload[0];
      if (header === codes.OK_HEADER) return client;
      if (header === codes.AUTH_SWITCH_REQUEST_HEADER) {
        const name = answer.payload.indexOf(0, 1);
        const plugin = answer.payload.subarray(1, name).toString();
        if (plugin !== codes.MYSQL_NATIVE_PASSWORD) throw new Error(`cannot answer ${plugin}`);
        const data = answer.payload.subarray(name + 1);
        client.write(
          serialize.packet(answer.sequenceId + 1, nativePasswordResponse(password, data)),
        );
        continue;
      }
      client.socket.destroy();
      throw new Error(`login failed: ${answer.payload.subarray(9).toString()}`);
    }
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** One command packet (sequence id 0 unless told otherwise). */
  command(code: number, argument: Buffer | string = Buffer.alloc(0), sequenceId = 0): void {
    this.write(serialize.packet(sequenceId, serialize.command(code, argument)));
  }

  /** The next packet from the edge; rejects when the connection closes first or after `timeoutMs`. */
  async next(timeoutMs = 5_000): Promise<Packet> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const packet = this.#packets.shift();
      if (packet !== undefined) return packet;
      if (this.#ended) throw new Error('the connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no packet within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
  }

  /** Packets until the one `done` accepts (inclusive). */
  async until(done: (packet: Packet) => boolean, timeoutMs = 5_000): Promise<Packet[]> {
    const packets: Packet[] = [];
    for (;;) {
      const packet = await this.next(timeoutMs);
      packets.push(packet);
      if (done(packet)) return packets;
    }
  }

  /** Every packet received and not yet read. */
  drain(): Packet[] {
    return this.#packets.splice(0);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** An ERR packet's code and message. */
export function errorOf(packet: Packet): { code: number; message: string } | null {
  const payload = packet.payload;
  if (payload[0] !== codes.ERR_HEADER) return null;
  const code = payload.readUInt16LE(1);
  const message = payload.subarray(payload[3] === 0x23 ? 9 : 3).toString();
  return { code, message };
}
