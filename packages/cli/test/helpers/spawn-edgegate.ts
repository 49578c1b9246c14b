// Runs `edgegate <command>` as a real child process, collects its log lines and finds its URLs.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { resolve } from 'node:path';

const BIN = resolve(import.meta.dirname, '../../bin/edgegate.js');

export interface Edgegate {
  child: ChildProcessWithoutNullStreams;
  /** The HTTP URL it logged (control plane, or the edge's status listener). */
  url: Promise<string>;
  exited: Promise<number | null>;
  output(): string;
  /** Resolves once the output from offset `from` on (default: all of it) matches. */
  logged(pattern: RegExp, from?: number, timeoutMs?: number): Promise<string>;
}

export function spawnEdgegate(args: string[], env: Record<string, string> = {}): Edgegate {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  const waiters = new Set<() => void>();
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const append = (chunk: Buffer) => {
    output += chunk.toString();
    for (const waiter of waiters) waiter();
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  const logged = (pattern: RegExp, from = 0, timeoutMs = 20_000) =>
    new Promise<string>((resolveMatch, reject) => {
      const check = () => {
        const match = pattern.exec(output.slice(from));
        if (match) {
          waiters.delete(check);
          clearTimeout(timer);
          resolveMatch(match[0]);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms:\n${output}`));
      }, timeoutMs);
      waiters.add(check);
      check();
      void exited.then(() => {
        if (waiters.has(check)) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`exited before logging ${pattern}:\n${output}`));
        }
      });
    });
  const url = logged(/"url":"(http:\/\/[^"]+)"/).then(
    (line) => /"url":"(http:\/\/[^"]+)"/.exec(line)?.[1] ?? '',
  );
  return { child, url, exited, output: () => output, logged };
}

/** Ends the process if it still runs, and waits for it. */
export async function stopEdgegate(process: Edgegate | undefined): Promise<void> {
  if (process === undefined) return;
  if (process.child.exitCode === null && process.child.signalCode === null)
    process.child.kill('SIGKILL');
  await process.exited;
}
