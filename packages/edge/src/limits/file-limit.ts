// The process's open-file limit: raised to the hard limit at start where the OS allows, and the
// edge's default connection caps derived from it so that the control plane (in the same process)
// keeps descriptors of its own. Node has no setrlimit; util-linux's `prlimit` sets it for a pid.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { ConnectionCaps } from './connection-counts.ts';

export interface FileLimit {
  soft: number;
  hard: number;
}

export interface RaisedFileLimit {
  /** The limit now; null when it cannot be read (no /proc/self/limits: not Linux). */
  limit: FileLimit | null;
  /** The soft limit before, when it was raised. */
  raisedFrom: number | null;
  /** What happened, for the start-up log. */
  note: string;
}

/** The open-file limit from /proc/self/limits; null where there is none. */
export function readFileLimit(): FileLimit | null {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (match === null) return null;
  const value = (field: string) => (field === 'unlimited' ? Infinity : Number(field));
  return { soft: value(match[1] as string), hard: value(match[2] as string) };
}

/**
 * Raises the soft open-file limit to the hard one with `prlimit --pid <own pid>` when it is lower
 * (Node already does this at start on most systems). Never throws: a limit it cannot raise is
 * reported in `note` and the edge starts with what it has.
 */
export function raiseFileLimit(): RaisedFileLimit {
  const before = readFileLimit();
  if (before === null) {
    return {
      limit: null,
      raisedFrom: null,
      note: 'open-file limit unknown (no /proc/self/limits)',
    };
  }
  if (before.soft >= before.hard) {
    return {
      limit: before,
      raisedFrom: null,
      note: `open-file limit ${before.soft} (the hard limit)`,
    };
  }
  const target = Number.isFinite(before.hard) ? String(before.hard) : 'unlimited';
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${target}:${target}`], {
      stdio: 'ignore',
      timeout: 5000,
    });
  } catch (error) {
    return {
      limit: before,
      raisedFrom: null,
      note:
        `open-file limit ${before.soft} (hard ${before.hard}): could not raise it with prlimit ` +
        `(${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); ` +
        'install util-linux or raise it with ulimit -n',
    };
  }
  const after = readFileLimit() ?? before;
  return after.soft > before.soft
    ? {
        limit: after,
        raisedFrom: before.soft,
        note: `open-file limit raised from ${before.soft} to ${after.soft}`,
      }
    : {
        limit: after,
        raisedFrom: null,
        note: `open-file limit ${after.soft}: prlimit did not raise it`,
      };
}

// Descriptors left to the rest of the process (store pool, HTTP clients, files, the refused
// connections the edge accepts only to answer): a quarter of the limit, at most 1024.
const MAX_RESERVED_DESCRIPTORS = 1024;

/**
 * The caps, where not given, for a process with this open-file limit: each edge session holds two
 * descriptors (client and origin), within what is left after the reserve; one address may hold
 * half of the total.
 */
export function defaultConnectionCaps(
  limit: FileLimit | null,
  given: Partial<ConnectionCaps> = {},
): ConnectionCaps {
  const maxConnections = given.maxConnections ?? connectionsWithin(limit);
  return {
    maxConnections,
    maxPerAddress: given.maxPerAddress ?? Math.max(1, Math.ceil(maxConnections / 2)),
  };
}

/** The most sessions the limit leaves room for, after the reserve. */
export function connectionsWithin(limit: FileLimit | null): number {
  const soft = limit === null || !Number.isFinite(limit.soft) ? 65536 : limit.soft;
  const reserved = Math.min(MAX_RESERVED_DESCRIPTORS, Math.floor(soft / 4));
  return Math.max(1, Math.floor((soft - reserved) / 2));
}
