// The open-file limit: raised to the hard limit with prlimit where it is lower, and the default
// connection caps leave the rest of the process descriptors of its own.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { connectionsWithin, defaultConnectionCaps, readFileLimit } from '../src/index.ts';

const FILE_LIMIT_MODULE = new URL('../src/limits/file-limit.ts', import.meta.url).href;

describe('the open-file limit', () => {
  it('is raised to the hard limit when a process starts below it', async () => {
    const own = readFileLimit();
    expect(own).not.toBeNull();
    const hard = own!.hard;
    // Node raises its own soft limit at start: lower the child's afterwards, from outside, as a
    // service manager's limit would leave it, then let it raise it.
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { raiseFileLimit } from ${JSON.stringify(FILE_LIMIT_MODULE)};
         process.stdout.write('ready\\n');
         process.stdin.once('data', () => {
           process.stdout.write(JSON.stringify(raiseFileLimit()) + '\\n');
           process.exit(0);
         });`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    while (!output.includes('ready\n')) await once(child.stdout, 'data');
    execFileSync('prlimit', ['--pid', String(child.pid), `--nofile=256:${hard}`]);
    child.stdin.write('go\n');
    await once(child, 'exit');
    const result = JSON.parse(output.split('\n')[1] as string);
    expect(result).toMatchObject({ raisedFrom: 256, limit: { soft: hard, hard } });
    expect(result.note).toBe(`open-file limit raised from 256 to ${hard}`);
  });

  it('leaves a reserve and two descriptors per edge connection', () => {
    expect(connectionsWithin({ soft: 20_000, hard: 20_000 })).toBe((20_000 - 1024) / 2);
    expect(connectionsWithin({ soft: 1024, hard: 4096 })).toBe((1024 - 256) / 2);
    expect(defaultConnectionCaps({ soft: 20_000, hard: 20_000 })).toEqual({
      maxConnections: 9488,
      maxPerAddress: 4744,
    });
    expect(defaultConnectionCaps(null, { maxConnections: 11 })).toEqual({
      maxConnections: 11,
      maxPerAddress: 6,
    });
  });
});
