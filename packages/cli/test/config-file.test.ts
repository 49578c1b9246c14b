// Settings from a file: `--config edgegate.toml` (or YAML, or EDGEGATE_CONFIG), the same names as
// the variables, precedence flag > variable > file > default, unknown names refused, and
// `edgegate config print` showing each value's source with secrets masked.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../server/src/config.ts';
import { readConfigFile } from '../../server/src/config-file.ts';

const BIN = resolve(import.meta.dirname, '../bin/edgegate.js');
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'eg-config-'));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function edgegate(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(EDGE|LOG_LEVEL|PORT|DATA_DIR)/.test(name)),
  );
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      env: { ...clean, ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('settings from a file', () => {
  const toml = file(
    'edgegate.toml',
    [
      'EDGE_PG_PORT = 7432',
      'EDGE_MYSQL_PORT = 7033',
      'LOG_LEVEL = "debug"',
      'ORIGIN_PRIVATE = "deny"',
      'EDGEGATE_SECRET = "0123456789abcdef0123456789abcdef0123"',
      'DATABASE_URL = "postgres://edgegate:hunter2@store.internal:5432/edgegate"',
    ].join('\n'),
  );

  it('reads TOML and YAML by the variables’ names, below flags and variables', () => {
    const fromToml = readConfigFile(toml);
    expect(fromToml).toMatchObject({ EDGE_PG_PORT: '7432', LOG_LEVEL: 'debug' });
    const config = parseConfig(
      { LOG_LEVEL: 'warn', EDGE_MYSQL_PORT: '' },
      { ORIGIN_PRIVATE: 'allow' },
      fromToml,
    );
    expect(config.edgePgPort).toBe(7432); // file
    expect(config.edgeMysqlPort).toBe(7033); // an empty variable does not hide the file
    expect(config.logLevel).toBe('warn'); // variable over file
    expect(config.originPrivate).toBe('allow'); // flag over file
    expect(config.port).toBe(8080); // default
    const yaml = readConfigFile(file('edgegate.yaml', 'EDGE_THREADS: 2\nTRUST_PROXY: true\n'));
    expect(yaml).toEqual({ EDGE_THREADS: '2', TRUST_PROXY: 'true' });
  });

  it('refuses an unknown name, a nested value, a file that does not parse or is missing', () => {
    expect(() => readConfigFile(file('typo.toml', 'EDGE_PGPORT = 1\n'))).toThrow(
      /unknown setting EDGE_PGPORT/,
    );
    expect(() => readConfigFile(file('nested.yaml', 'EDGE_PG_PORT: { a: 1 }\n'))).toThrow(
      /must be a string, number or boolean/,
    );
    expect(() => readConfigFile(file('broken.toml', 'EDGE_PG_PORT = = 1\n'))).toThrow(
      /does not parse/,
    );
    expect(() => readConfigFile(join(dir, 'absent.toml'))).toThrow(/cannot read .*ENOENT/);
    // A bad value in the file is named like a bad variable.
    expect(() => parseConfig({}, {}, { EDGE_PG_PORT: 'seventy' })).toThrow(/EDGE_PG_PORT/);
  });

  it(
    '`config print` shows each value and its source, with secrets masked',
    { timeout: 90_000 },
    async () => {
      const printed = await edgegate(['config', 'print', '--config', toml, '--port', '9000'], {
        LOG_LEVEL: 'warn',
      });
      expect(printed.code).toBe(0);
      const line = (name: string) =>
        printed.stdout.split('\n').find((l) => l.startsWith(`${name} `)) ?? '';
      expect(line('PORT')).toMatch(/9000\s+\[flag\]$/);
      expect(line('LOG_LEVEL')).toMatch(/warn\s+\[environment\]$/);
      expect(line('EDGE_PG_PORT')).toMatch(/7432\s+\[file\]$/);
      expect(line('HOST')).toMatch(/127\.0\.0\.1\s+\[default\]$/);
      expect(line('EDGEGATE_SECRET')).toMatch(/\*{8}\s+\[file\]$/);
      expect(line('DATABASE_URL')).toContain('postgres://edgegate:********@store.internal');
      expect(printed.stdout).not.toContain('hunter2');
      expect(printed.stdout).not.toContain('0123456789abcdef0123456789abcdef0123');

      const json = await edgegate(['config', 'print', '--json'], { EDGEGATE_CONFIG: toml });
      const rows = JSON.parse(json.stdout) as { name: string; value: string; source: string }[];
      expect(rows.find((row) => row.name === 'EDGE_MYSQL_PORT')).toEqual({
        name: 'EDGE_MYSQL_PORT',
        value: '7033',
        source: 'file',
      });

      const refused = await edgegate(['config', 'print', '--config', join(dir, 'typo.toml')]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('unknown setting EDGE_PGPORT');
    },
  );

  it('a server started with --config listens where the file says', async () => {
    const data = mkdtempSync(join(tmpdir(), 'eg-config-start-'));
    const config = file(
      'start.yaml',
      `PORT: 0\nEDGE_PG_PORT: 0\nEDGE_MYSQL_PORT: 0\nDATA_DIR: ${data}\nLOG_LEVEL: info\n`,
    );
    const child = spawn(process.execPath, [BIN, 'start', '--config', config], {
      env: Object.fromEntries(
        Object.entries(process.env).filter(([n]) => !/^(EDGE|LOG_LEVEL|PORT|DATA_DIR)/.test(n)),
      ),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 60_000;
    while (!output.includes('control plane listening') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    expect(output).toContain('control plane listening');
    expect(output).toContain(data);
  }, 90_000);
});
