// Starts a bench server in a worker thread (its own core) and talks to it by messages.
import { createServer, type RequestListener } from 'node:http';
import { parentPort, Worker, type MessagePort } from 'node:worker_threads';

export interface BenchWorker {
  url: string;
  ask<T>(message: Record<string, unknown>): Promise<T>;
  /** The worker thread's CPU time so far (user + system), in µs. */
  cpu(): Promise<number>;
  stop(): Promise<void>;
}

export async function startWorker(file: URL, data: Record<string, unknown>): Promise<BenchWorker> {
  const worker = new Worker(file, { workerData: data });
  // The worker answers each message with one reply, in order; the bench never asks a second
  // question before the first is answered.
  const pending: { resolve: (value: unknown) => void; reject: (error: Error) => void }[] = [];
  const ready = new Promise<string>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (message: { url: string }) => resolve(message.url));
  });
  const url = await ready;
  worker.on('message', (message) => pending.shift()?.resolve(message));
  // A worker that fails or exits fails what was asked of it, instead of leaving the bench waiting.
  const failAll = (error: Error) => {
    for (const ask of pending.splice(0)) ask.reject(error);
  };
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`the bench worker exited (code ${code})`)));
  const ask = <T>(message: Record<string, unknown>) =>
    new Promise<T>((resolve, reject) => {
      pending.push({ resolve: resolve as (value: unknown) => void, reject });
      worker.postMessage(message);
    });
  return {
    url,
    ask,
    async cpu() {
      return (await ask<{ cpuMicros: number }>({ cpu: true })).cpuMicros;
    },
    async stop() {
      worker.postMessage({ stop: true });
      await new Promise((r) => worker.once('exit', r));
    },
  };
}

/** In a bench server's worker: answers `{cpu: true}` with the thread's CPU time (`cpu()` above). */
export function answerCpuQueries(port: MessagePort) {
  port.on('message', (message: { cpu?: boolean }) => {
    if (!message.cpu) return;
    const { user, system } = process.threadCpuUsage();
    port.postMessage({ cpuMicros: user + system });
  });
}

/**
 * In a bench server's worker: serves `handler` on a free loopback port, tells the bench its URL,
 * answers CPU queries, and closes on `{stop: true}`. Returns the worker's message port for more.
 */
export async function serveOnLoopback(handler: RequestListener): Promise<MessagePort> {
  const port = parentPort!;
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  answerCpuQueries(port);
  port.postMessage({
    url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
  });
  port.on('message', (message: { stop?: boolean }) => {
    if (message.stop) server.close(() => process.exit(0));
  });
  return port;
}
