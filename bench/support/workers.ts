// Starts a bench server in a worker thread (its own core) and talks to it by messages.
import { Worker } from 'node:worker_threads';

export interface BenchWorker {
  url: string;
  ask<T>(message: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

export async function startWorker(file: URL, data: Record<string, unknown>): Promise<BenchWorker> {
  const worker = new Worker(file, { workerData: data });
  let pending: ((value: unknown) => void) | undefined;
  const ready = new Promise<string>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (message: { url: string }) => resolve(message.url));
  });
  const url = await ready;
  worker.on('message', (message) => pending?.(message));
  return {
    url,
    ask<T>(message: Record<string, unknown>) {
      return new Promise<T>((resolve) => {
        pending = resolve as (value: unknown) => void;
        worker.postMessage(message);
      });
    },
    async stop() {
      worker.postMessage({ stop: true });
      await new Promise((r) => worker.once('exit', r));
    },
  };
}
