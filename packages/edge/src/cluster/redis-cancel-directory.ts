// Cancel keys shared by the edge nodes of a cluster: a Postgres CancelRequest (or a MySQL KILL)
// may reach another node than the session's, which then finds the origin to send it to in Redis.
// Each node keeps its own keys in memory too, so a cancel that lands on the session's node needs
// no round trip, and a Redis outage only loses the cross-node case (a cancel is best effort).
import type { Cluster, Redis } from 'ioredis';
import type { CancelDirectory, EdgeLogger } from '../runtime.ts';
import type { OriginTarget } from '../upstream/origin.ts';

/** A key's entry lives this long; the node that holds the session renews it meanwhile. */
export const CANCEL_KEY_TTL_SECONDS = 3600;
const RENEW_MS = (CANCEL_KEY_TTL_SECONDS * 1000) / 3;
const LOOKUP_TIMEOUT_MS = 500;

export function cancelKeyName(key: string): string {
  return `eg:cancel:${key}`;
}

// Deletes the key only while it still holds this node's value: two nodes may give out the same
// MySQL connection id, and the later session's entry must outlive the earlier one's end.
const FORGET_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export class RedisCancelDirectory implements CancelDirectory {
  readonly #redis: () => Redis | Cluster | null;
  readonly #logger: EdgeLogger;
  readonly #local = new Map<string, { target: OriginTarget; value: string }>();
  readonly #timer: NodeJS.Timeout;

  /** `redis`: the node's command connection, once there is one. */
  constructor(redis: () => Redis | Cluster | null, logger: EdgeLogger) {
    this.#redis = redis;
    this.#logger = logger;
    this.#timer = setInterval(() => this.renew(), RENEW_MS);
    this.#timer.unref();
  }

  remember(key: string, target: OriginTarget): void {
    const value = JSON.stringify(target);
    this.#local.set(key, { target, value });
    this.#share(key, value);
  }

  forget(key: string): void {
    const known = this.#local.get(key);
    if (known === undefined) return;
    this.#local.delete(key);
    this.#redis()
      ?.eval(FORGET_SCRIPT, 1, cancelKeyName(key), known.value)
      .catch(() => undefined);
  }

  async lookup(key: string): Promise<OriginTarget | undefined> {
    const known = this.#local.get(key);
    if (known !== undefined) return known.target;
    const redis = this.#redis();
    if (redis === null) return undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const value = await Promise.race([
        redis.get(cancelKeyName(key)),
        new Promise<null>((resolve) => {
          timer = setTimeout(() => resolve(null), LOOKUP_TIMEOUT_MS);
        }),
      ]);
      return value === null ? undefined : (JSON.parse(value) as OriginTarget);
    } catch (error) {
      this.#logger.warn({ err: error }, 'could not look a cancel key up in Redis');
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes every key of this node again (Redis was restarted or unreachable: they may be lost). */
  renew(): void {
    for (const [key, { value }] of this.#local) this.#share(key, value);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #share(key: string, value: string): void {
    this.#redis()
      ?.set(cancelKeyName(key), value, 'EX', CANCEL_KEY_TTL_SECONDS)
      .catch(() => undefined);
  }
}
