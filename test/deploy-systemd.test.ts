// The systemd unit (deploy/systemd/edgegate@.service): checked by systemd's own verifier with the
// install path pointed at this checkout, and for what service managers need from Edgegate.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const UNIT = readFileSync(resolve(ROOT, 'deploy/systemd/edgegate@.service'), 'utf8');
const INSTALL_DIR = '/opt/edgegate';

/** The unit's `Key=value` lines of [Service]; repeated keys keep every value. */
function serviceSection(unit: string): Map<string, string[]> {
  const section = unit.slice(unit.indexOf('[Service]'), unit.indexOf('[Install]'));
  const entries = new Map<string, string[]>();
  for (const line of section.split('\n')) {
    const match = /^(\w+)=(.*)$/.exec(line);
    const [, key, value] = match ?? [];
    if (key !== undefined && value !== undefined)
      entries.set(key, [...(entries.get(key) ?? []), value]);
  }
  return entries;
}

const service = serviceSection(UNIT);
const one = (key: string) => service.get(key)?.[0] ?? '';

describe('the systemd unit', () => {
  it('runs node on the edgegate script directly, with the instance as the command', () => {
    const [node, script, command, ...rest] = one('ExecStart').split(' ');
    expect(rest).toEqual([]);
    expect(command).toBe('%i');
    expect(node).toBe(`${INSTALL_DIR}/node_modules/node/bin/node`);
    expect(script).toBe(`${INSTALL_DIR}/packages/cli/bin/edgegate.js`);
    // The same paths in this checkout: the pinned Node (after npm ci) and the CLI.
    for (const path of [node ?? '', script ?? ''])
      expect(existsSync(path.replace(INSTALL_DIR, ROOT)), path).toBe(true);
    for (const key of ['ExecStart', 'ExecReload']) expect(one(key)).not.toMatch(/\bnpx?\b/);
  });

  it('reloads with SIGHUP, stops with SIGTERM and waits past the shutdown bound', () => {
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('KillSignal')).toBe('SIGTERM');
    // The control plane exits within 15 s; the edge's drain is EDGE_DRAIN_SECONDS (30).
    expect(Number(one('TimeoutStopSec'))).toBeGreaterThan(30);
    expect(Number(one('LimitNOFILE'))).toBeGreaterThanOrEqual(65536);
    expect(one('User')).toBe('edgegate');
  });

  it('passes systemd-analyze verify', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgegate-unit-'));
    try {
      const unit = join(dir, 'edgegate@server.service');
      writeFileSync(unit, UNIT.replaceAll(INSTALL_DIR, ROOT));
      const { stderr } = await promisify(execFile)('systemd-analyze', ['verify', unit], {
        cwd: dir,
      });
      expect(stderr).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
