// SQL Server: the connect form's fields and a reachability test that speaks TDS PRELOGIN only.
//
// Edgegate carries no TDS client, so this test does not log in: it proves that SQL Server listens
// at host:port, reads its version, and checks the encryption settings agree. The user, password,
// database and TLS certificate are not verified, and the outcome's `note` says so.
import { connect as dialTcp } from 'node:net';
import { z } from 'zod';
import { withinDeadline } from './deadline.ts';
import { formatTarget, networkFailure, type Target } from './failures.ts';
import {
  choiceField,
  databaseField,
  hostField,
  passwordField,
  portField,
  switchField,
  userField,
} from './fields.ts';
import {
  ENCRYPT_NOT_SUP,
  ENCRYPT_OFF,
  ENCRYPT_ON,
  ENCRYPT_REQ,
  parsePreloginResponse,
  serializePrelogin,
} from './tds-prelogin.ts';
import type { ConnectionTypeDef, TestContext, TestFailure, TestOutcome } from './types.ts';

const ENCRYPT_MODES = ['disable', 'prefer', 'require'] as const;

/** What the PRELOGIN request offers for each form setting. */
const OFFERED_ENCRYPTION: Record<MssqlConfig['encrypt'], number> = {
  disable: ENCRYPT_NOT_SUP,
  prefer: ENCRYPT_OFF,
  require: ENCRYPT_ON,
};

const NOT_LOGGED_IN =
  'SQL Server answered, but this test does not log in: the user, password, database and TLS certificate were not checked.';

const mssqlSchema = z.strictObject({
  host: hostField({ order: 1 }),
  port: portField(1433, { order: 2 }),
  database: databaseField({ order: 3 }),
  user: userField({ order: 4, placeholder: 'app_reader', example: 'app_reader' }),
  password: passwordField({ order: 5 }),
  encrypt: choiceField(ENCRYPT_MODES, 'require', {
    order: 6,
    title: 'Encryption',
    description: 'require encrypts the whole session; prefer encrypts when the server can.',
  }),
  trustServerCertificate: switchField({
    order: 7,
    title: 'Trust the server certificate',
    description: 'Accept a certificate no public authority signed (self-signed servers).',
  }),
});

export type MssqlConfig = z.output<typeof mssqlSchema>;

export const mssqlType: ConnectionTypeDef<MssqlConfig> = {
  id: 'mssql',
  title: 'SQL Server',
  description: 'Microsoft SQL Server 2016 or later, or Azure SQL.',
  cacheType: 'mssql',
  schema: mssqlSchema,
  secretFields: ['password'],
  origin: ({ host, port }) => ({ host, port }),
  test: testMssql,
};

async function testMssql(config: MssqlConfig, ctx: TestContext): Promise<TestOutcome> {
  return withinDeadline(ctx, config, config.password, (signal) => probe(config, ctx, signal));
}

function probe(config: MssqlConfig, ctx: TestContext, signal: AbortSignal): Promise<TestOutcome> {
  const target: Target = config;
  return new Promise((resolve) => {
    const socket = dialTcp({ host: ctx.address, port: config.port });
    let received = Buffer.alloc(0);
    const close = () => socket.destroy();
    signal.addEventListener('abort', close, { once: true });
    const finish = (outcome: TestOutcome) => {
      signal.removeEventListener('abort', close);
      close();
      resolve(outcome);
    };
    socket.once('connect', () =>
      socket.write(serializePrelogin(OFFERED_ENCRYPTION[config.encrypt])),
    );
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const response = parsePreloginResponse(received);
      if (response.kind === 'not_tds') finish(notTds(target, response.reason));
      if (response.kind === 'prelogin')
        finish(judge(config, response.version, response.encryption));
    });
    socket.once('error', (error) => {
      finish(networkFailure(error, target, 'encrypt') ?? notTds(target, error.message));
    });
    socket.once('close', () =>
      finish(notTds(target, 'it closed the connection without answering')),
    );
  });
}

// The server's ENCRYPTION answer against the form: MS-TDS 2.2.6.5 says which pairs end the session.
function judge(config: MssqlConfig, version: string, encryption: number): TestOutcome {
  if (config.encrypt === 'require' && encryption === ENCRYPT_NOT_SUP) {
    return {
      ok: false,
      code: 'tls_unavailable',
      field: 'encrypt',
      message: `${formatTarget(config)} does not support encryption: set Encryption to prefer or disable.`,
    };
  }
  if (config.encrypt === 'disable' && encryption === ENCRYPT_REQ) {
    return {
      ok: false,
      code: 'tls_required',
      field: 'encrypt',
      message: `${formatTarget(config)} requires encryption: set Encryption to prefer or require.`,
    };
  }
  return { ok: true, serverVersion: version, note: NOT_LOGGED_IN, passwordVerified: false };
}

function notTds(target: Target, reason: string): TestFailure {
  return {
    ok: false,
    code: 'protocol_error',
    field: 'port',
    message: `${formatTarget(target)} does not speak TDS (${reason}): is this SQL Server, and does it demand TDS 8 strict encryption?`,
  };
}
