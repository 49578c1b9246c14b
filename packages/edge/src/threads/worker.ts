// The entry of one edge worker thread: its own runtime, result store and listener on the shared
// port (SO_REUSEPORT: the kernel spreads connections over the threads). What must be the same in
// every thread goes through the host: cache configs and their change notices, cancel keys, logs
// and stats. Write epochs live in shared memory, so invalidation needs no message at all.
import { parentPort, workerData } from 'node:worker_threads';
import { EpochTable } from '../cache/epochs.ts';
import { LeasedBus } from '../cluster/bus.ts';
import { subscribeInThread } from '../cluster/redis-bus.ts';
import { emptyCounts, SharedResults } from '../cluster/shared-results.ts';
import { ConnectionCounts } from '../limits/connection-counts.ts';
import type { EdgeCacheConfig, EdgeConfigSource } from '../control/config.ts';
import type { EdgeLogger } from '../runtime.ts';
import type { OriginTarget } from '../upstream/origin.ts';
import { Channel } from './channel.ts';
import { loadGuard } from './guard.ts';
import { openPgEdge } from './start.ts';
import type { EdgeWorkerData, WorkerReport } from './pool.ts';

const data = workerData as EdgeWorkerData;
const listeners = new Set<(cacheId: string | null) => void>();
// Refusals already reported: each report carries only the new ones, so a thread that dies takes
// nothing back from the totals.
const reportedRefusals = { total: 0, address: 0 };
const reportedEvents = { evictions: 0, postgres: 0, mysql: 0 };
let stop: () => Promise<void> = async () => {};

const channel = new Channel(parentPort as NonNullable<typeof parentPort>, {
  changed: (cacheId: string | null) => {
    for (const listener of listeners) listener(cacheId);
  },
  report: (): WorkerReport => {
    const refused = edge.refused();
    const delta = {
      total: refused.total - reportedRefusals.total,
      address: refused.address - reportedRefusals.address,
    };
    Object.assign(reportedRefusals, refused);
    const evictions = edge.runtime.results.evictions;
    const { postgres, mysql } = edge.runtime.sessions.authFailures;
    const events = {
      evictions: evictions - reportedEvents.evictions,
      authFailures: {
        postgres: postgres - reportedEvents.postgres,
        mysql: mysql - reportedEvents.mysql,
      },
    };
    Object.assign(reportedEvents, { evictions, postgres, mysql });
    return {
      deltas: [...edge.runtime.allStats()].flatMap((stats) => stats.drain() ?? []),
      refused: delta,
      shared: edge.runtime.sharedResults?.drainCounts() ?? emptyCounts(),
      events,
      ...edge.held(),
    };
  },
  tls: (pem: { cert: string; key: string }) => edge.setTls(pem),
  sessions: () => edge.sessions(),
  kill: (id: string) => edge.kill(id),
  drain: (ms: number) => edge.drain(ms),
  close: () => stop(),
});

const source: EdgeConfigSource = {
  loadCache: (id) => channel.request<EdgeCacheConfig | null>('load', id),
  subscribe(listener) {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};

// Log records cross to the host as plain data: an error keeps its name, message, code and stack.
function plain(obj: object): object {
  const out: Record<string, unknown> = { worker: data.index };
  for (const [name, value] of Object.entries(obj)) {
    out[name] =
      value instanceof Error
        ? {
            type: value.name,
            message: value.message,
            code: (value as { code?: unknown }).code,
            stack: value.stack,
          }
        : value;
  }
  return out;
}
const log =
  (level: keyof EdgeLogger) =>
  (obj: object, msg?: string): void => {
    try {
      channel.notify('log', { level, obj: plain(obj), msg });
    } catch {
      channel.notify('log', { level, obj: { worker: data.index }, msg });
    }
  };
const logger: EdgeLogger = {
  info: log('info'),
  warn: log('warn'),
  error: log('error'),
  debug: log('debug'),
};

const epochs = new EpochTable(data.epochs);
const edge = await openPgEdge(
  {
    source,
    cacheMaxBytes: data.cacheMaxBytes,
    cacheMaxEntryBytes: data.cacheMaxEntryBytes,
    guard: await loadGuard(data.guard),
    logger,
    epochs,
    // Reads check the lease in shared memory; only a committed write crosses to the host thread.
    bus:
      data.cluster !== null
        ? new LeasedBus(epochs, (cacheId, tables) =>
            channel.request<void>('publish', { cacheId, tables }),
          )
        : null,
    sharedResults: await SharedResults.open(data.sharedResults),
    cancelKeys: {
      remember: (key: string, target: OriginTarget) => channel.notify('remember', { key, target }),
      forget: (key: string) => channel.notify('forget', key),
      lookup: (key: string) => channel.request<OriginTarget | undefined>('lookup', key),
    },
  },
  {
    host: data.host,
    port: data.port,
    tls: data.tls,
    reusePort: true,
    connections: new ConnectionCounts(data.connections, data.index, data.connectionCaps),
    loginTimeoutMs: data.loginTimeoutMs,
    mysqlPort: data.mysqlPort,
    threadIndex: data.index,
  },
);
const subscription = data.cluster === null ? null : subscribeInThread({ ...data.cluster, epochs });
stop = async () => {
  subscription?.close();
  await edge.close();
};
channel.notify('listening', { port: edge.port, mysqlPort: edge.mysqlPort });
