// Bounds a credential test by the caller's deadline and cancel signal, closing whatever it left open.
import { timedOut, unexpectedFailure, type Target } from './failures.ts';
import type { TestContext, TestOutcome } from './types.ts';

const CANCELLED: TestOutcome = {
  ok: false,
  code: 'unknown',
  message: 'The test was cancelled before it finished.',
};

/**
 * Runs `attempt` until it answers, the deadline passes or `ctx.signal` aborts, whichever comes
 * first. The signal handed to `attempt` aborts when this returns: attempts close their sockets
 * on it, so a server that never answers cannot keep one open.
 */
export async function withinDeadline(
  ctx: TestContext,
  target: Target,
  secret: string,
  attempt: (signal: AbortSignal) => Promise<TestOutcome>,
): Promise<TestOutcome> {
  if (ctx.signal?.aborted) return CANCELLED;
  const done = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let cancel = (): void => undefined;
  const stopped = new Promise<TestOutcome>((resolve) => {
    timer = setTimeout(() => resolve(timedOut(target, ctx.timeoutMs)), ctx.timeoutMs);
    cancel = () => resolve(CANCELLED);
    ctx.signal?.addEventListener('abort', cancel, { once: true });
  });
  try {
    return await Promise.race([
      stopped,
      attempt(done.signal).catch((error: unknown) => unexpectedFailure(error, secret)),
    ]);
  } finally {
    clearTimeout(timer);
    ctx.signal?.removeEventListener('abort', cancel);
    done.abort();
  }
}
