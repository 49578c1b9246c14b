// A CancelRequest goes to the origin that issued its key. The key may belong to a session of
// another thread: the directory answers for all of them.
import type { EdgeRuntime } from '../../runtime.ts';
import { sendCancel } from '../../upstream/origin.ts';

export function forwardCancel(runtime: EdgeRuntime, frame: Buffer): void {
  const key = frame.toString('hex', 8);
  runtime.cancelKeys.lookup(key).then(
    (target) => {
      if (target !== undefined) sendCancel(target, frame);
    },
    (error: unknown) => runtime.logger.warn({ err: error }, 'could not forward a cancel'),
  );
}
