// Requests, replies and notices between the edge's host thread and one of its worker threads, over
// a MessagePort: `request` resolves with what the other side's handler returned (or rejects with
// its error), `notify` expects no answer.
import type { MessagePort } from 'node:worker_threads';

type Wire =
  | { kind: 'request'; seq: number; type: string; payload: unknown }
  | { kind: 'reply'; seq: number; value?: unknown; error?: string }
  | { kind: 'notice'; type: string; payload: unknown };

/** Answers a request (a value or a promise of one); a notice's answer is ignored. */
export type Handler = (payload: never) => unknown;

/** The part of a MessagePort or a Worker the channel uses. */
export interface Port {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

export class Channel {
  readonly #port: Port;
  readonly #handlers: Record<string, Handler>;
  readonly #pending = new Map<number, { resolve(value: unknown): void; reject(e: Error): void }>();
  #seq = 0;
  #closed = false;

  constructor(port: Port | MessagePort, handlers: Record<string, Handler>) {
    this.#port = port;
    this.#handlers = handlers;
    port.on('message', (message: unknown) => this.#receive(message as Wire));
  }

  request<T>(type: string, payload?: unknown): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('the edge thread has stopped'));
    const seq = ++this.#seq;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(seq, { resolve: resolve as (value: unknown) => void, reject });
      this.#port.postMessage({ kind: 'request', seq, type, payload } satisfies Wire);
    });
  }

  notify(type: string, payload?: unknown): void {
    if (!this.#closed) this.#port.postMessage({ kind: 'notice', type, payload } satisfies Wire);
  }

  /** Fails every request still waiting (the other thread is gone) and refuses new ones. */
  close(reason: string): void {
    this.#closed = true;
    for (const pending of this.#pending.values()) pending.reject(new Error(reason));
    this.#pending.clear();
  }

  #receive(message: Wire): void {
    if (message.kind === 'reply') {
      const pending = this.#pending.get(message.seq);
      if (pending === undefined) return;
      this.#pending.delete(message.seq);
      if (message.error !== undefined) pending.reject(new Error(message.error));
      else pending.resolve(message.value);
      return;
    }
    const handler = this.#handlers[message.type];
    if (message.kind === 'notice') {
      handler?.(message.payload as never);
      return;
    }
    const { seq } = message;
    const reply = (answer: { value?: unknown; error?: string }) => {
      if (!this.#closed) this.#port.postMessage({ kind: 'reply', seq, ...answer } satisfies Wire);
    };
    if (handler === undefined) {
      reply({ error: `no handler for ${message.type}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(message.payload as never))
      .then(
        (value) => reply({ value }),
        (error: unknown) =>
          reply({ error: error instanceof Error ? error.message : String(error) }),
      );
  }
}
