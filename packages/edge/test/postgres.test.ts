// The codec speaks to the real Postgres on this machine: startup, a simple query, replies.
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { BackendParser, dataRowText, serialize } from '../src/pg/protocol/index.ts';
import type { BackendMessage } from '../src/pg/protocol/index.ts';

// Sends one request and collects the replies up to ReadyForQuery (or an error).
function exchange(socket: Socket, request: Buffer, parser: BackendParser) {
  return new Promise<BackendMessage[]>((resolve, reject) => {
    const messages: BackendMessage[] = [];
    const onData = (chunk: Buffer) => {
      try {
        parser.parse(chunk, (message) => messages.push(message));
      } catch (error) {
        reject(error);
      }
      if (messages.at(-1)?.kind === 'readyForQuery' || messages.at(-1)?.kind === 'errorResponse') {
        socket.off('data', onData);
        resolve(messages);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(request);
  });
}

describe('against the local Postgres', () => {
  it('logs in with trust auth and runs select 1 as x', async () => {
    const socket = connect({ host: '127.0.0.1', port: 5432 });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve).once('error', reject);
    });
    try {
      const parser = new BackendParser();
      const login = await exchange(
        socket,
        serialize.startupMessage({
          user: 'postgres',
          database: 'test',
          application_name: 'edge-test',
        }),
        parser,
      );
      const statuses = login.filter((message) => message.kind === 'parameterStatus');
      expect(statuses.length).toBeGreaterThan(0);
      expect(login.map((message) => message.kind)).toEqual([
        'authenticationOk',
        ...statuses.map(() => 'parameterStatus'),
        'backendKeyData',
        'readyForQuery',
      ]);
      expect(login.at(-1)).toMatchObject({ status: 'I' });
      expect(statuses).toContainEqual(
        expect.objectContaining({ name: 'application_name', value: 'edge-test' }),
      );

      const result = await exchange(socket, serialize.query('select 1 as x'), parser);
      expect(result.map((message) => message.kind)).toEqual([
        'rowDescription',
        'dataRow',
        'commandComplete',
        'readyForQuery',
      ]);
      const [description, row, complete, ready] = result;
      expect(description).toMatchObject({ fields: [{ name: 'x', typeOid: 23, format: 0 }] });
      if (row?.kind !== 'dataRow') throw new Error('expected a DataRow');
      expect(dataRowText(row)).toEqual(['1']);
      expect(complete).toMatchObject({ tag: 'SELECT 1' });
      expect(ready).toMatchObject({ status: 'I' });
      expect(parser.bufferedBytes).toBe(0);
    } finally {
      socket.end(serialize.terminate());
    }
  });
});
