// Messages come out the same however TCP happens to split or coalesce the stream.
import { describe, expect, it } from 'vitest';
import { BackendParser, FrontendParser, serialize } from '../src/pg/protocol/index.ts';
import {
  backendFixtures,
  frontendFixtures,
  parseBackend,
  parseFrontend,
  startup,
} from './protocol-fixtures.ts';

const backendStream = Buffer.concat(backendFixtures);
const frontendStream = Buffer.concat([serialize.sslRequest(), startup, ...frontendFixtures]);

const hexFrames = (messages: { frame: Buffer }[]) => messages.map((m) => m.frame.toString('hex'));

describe('chunk boundaries', () => {
  it('emits every message of one chunk, in order', () => {
    const messages = parseBackend(new BackendParser(), backendStream);
    expect(hexFrames(messages)).toEqual(backendFixtures.map((frame) => frame.toString('hex')));
  });

  it('gives the same backend messages for a split at every byte', () => {
    const expected = hexFrames(parseBackend(new BackendParser(), backendStream));
    for (let cut = 0; cut <= backendStream.length; cut++) {
      const parser = new BackendParser();
      const messages = parseBackend(
        parser,
        backendStream.subarray(0, cut),
        backendStream.subarray(cut),
      );
      expect(hexFrames(messages)).toEqual(expected);
      expect(parser.bufferedBytes).toBe(0);
    }
  });

  it('gives the same frontend messages for a split at every byte', () => {
    const feed = (parser: FrontendParser, ...chunks: Buffer[]) =>
      // An empty chunk resumes after the pause that follows the SSLRequest.
      parseFrontend(parser, ...chunks, Buffer.alloc(0));
    const expected = hexFrames(feed(new FrontendParser(), frontendStream));
    expect(expected).toHaveLength(frontendFixtures.length + 2);
    for (let cut = 0; cut <= frontendStream.length; cut++) {
      const parser = new FrontendParser();
      const messages = feed(parser, frontendStream.subarray(0, cut), frontendStream.subarray(cut));
      expect(hexFrames(messages)).toEqual(expected);
    }
  });

  it('survives one byte at a time, and earlier frames stay intact', () => {
    const parser = new BackendParser();
    const chunks = [...backendStream].map((byte) => Buffer.from([byte]));
    const messages = parseBackend(parser, ...chunks);
    expect(Buffer.concat(messages.map((message) => message.frame))).toEqual(backendStream);
  });

  it('hands out views of the chunk when a frame fits in it', () => {
    const chunk = Buffer.concat([serialize.readyForQuery('I'), serialize.commandComplete('SET')]);
    const messages = parseBackend(new BackendParser(), chunk);
    expect(messages.every((message) => message.frame.buffer === chunk.buffer)).toBe(true);
    expect(messages[1]?.frame.byteOffset).toBe(chunk.byteOffset + 6);
  });

  it('reassembles a large row arriving in socket-sized chunks', () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 'a');
    const stream = Buffer.concat([serialize.dataRow([big, 'b']), serialize.readyForQuery('T')]);
    const chunks: Buffer[] = [];
    for (let at = 0; at < stream.length; at += 65536) chunks.push(stream.subarray(at, at + 65536));
    const messages = parseBackend(new BackendParser(), ...chunks);
    expect(messages.map((message) => message.kind)).toEqual(['dataRow', 'readyForQuery']);
    // Buffer#equals: a deep toEqual over megabytes is needlessly slow.
    expect(Buffer.concat(messages.map((message) => message.frame)).equals(stream)).toBe(true);
  });

  it('counts what it holds while a frame is incomplete', () => {
    const parser = new BackendParser();
    const row = serialize.dataRow(['hello']);
    expect(parseBackend(parser, row.subarray(0, 3))).toEqual([]);
    expect(parser.bufferedBytes).toBe(3);
    expect(parseBackend(parser, row.subarray(3, 9))).toEqual([]);
    expect(parser.bufferedBytes).toBe(9);
    expect(parseBackend(parser, row.subarray(9))).toHaveLength(1);
    expect(parser.bufferedBytes).toBe(0);
  });
});
