// Delivers queued webhook events. The queue is the webhook_deliveries table: due rows are claimed
// under a lease, so several processes share it and a crashed process's work is claimed again;
// each event is POSTed signed, through the origin guard, and the outcome or next try is recorded.
import type { EventEmitter } from 'node:events';
import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { sql } from 'kysely';
import {
  LEGACY_WEBHOOK_SIGNATURE_HEADER,
  signWebhook,
  signWebhookMessage,
} from '@edgegate/contract';
import type { Db } from '../db/store.ts';
import type { WorkspaceEventRow } from '../db/schema.ts';
import type { OriginPolicy } from '../services/caches.ts';
import { isForbiddenAddress, isPrivateAddress } from '../services/origin-guard.ts';
import { openSecret, type Keyring } from './keyring.ts';
import { toEvent } from './events.ts';
import { webhookSecretContext } from './webhooks.ts';
import { parseWebhookSecrets, signingSecrets } from './webhook-secrets.ts';

export interface WebhookDispatcherOptions {
  db: Db;
  keyring: Keyring;
  logger: Pick<FastifyBaseLogger, 'warn' | 'error'>;
  policy: OriginPolicy;
  /** Emits `deliveries` after a commit queued some: they go out at once instead of at the next poll. */
  bus?: EventEmitter;
  /** The first retry's delay; each later one doubles it. */
  retryBaseMs?: number;
  /** A delivery still failing this long after its event is given up. */
  maxAgeMs?: number;
  pollMs?: number;
  /** The whole request, connect to last byte. */
  timeoutMs?: number;
  /** Deliveries claimed (and sent concurrently) at a time. */
  batch?: number;
}

export interface WebhookDispatcher {
  stop(): Promise<void>;
  wake(): void;
}

const WEBHOOK_USER_AGENT = 'Edgegate-Webhooks/1';
/** Deliveries of one endpoint, and of one workspace, in one batch. */
const PER_WEBHOOK = 2;
const PER_WORKSPACE = 5;
/** Rows looked at per batch slot, so fair shares can be picked from more than the oldest few. */
const CANDIDATES_PER_SLOT = 5;
const MAX_RETRY_DELAY_MS = 3600_000;
const JITTER = 0.2;
const MAX_ERROR_LENGTH = 500;
/** Longer than any attempt (bounded by timeoutMs) plus writing its outcome. */
const LEASE_MARGIN_MS = 30_000;
/** How long stop() waits past timeoutMs for in-flight attempts before leaving them to their leases. */
const STOP_GRACE_MS = 5_000;

interface ClaimedDelivery {
  id: string;
  attempts: number;
  webhook_id: string;
  url: string;
  secret: string;
  key_id: string;
  event_id: string;
  event_seq: string;
  workspace_id: string;
  event_type: string;
  event_data: Record<string, unknown>;
  event_created_at: Date;
}

type Outcome =
  | { kind: 'delivered'; status: number }
  | { kind: 'retry'; status: number | null; error: string; retryAfterMs: number }
  | { kind: 'failed'; status: number | null; error: string };

/** What an endpoint's answer means: 2xx done; 429 and 5xx later; anything else never. */
function judge(status: number, retryAfter: string | undefined): Outcome {
  if (status >= 200 && status < 300) return { kind: 'delivered', status };
  if (status === 429 || status >= 500) {
    const seconds = (status === 429 || status === 503) && retryAfter?.trim();
    const retryAfterMs = seconds && /^\d{1,9}$/.test(seconds) ? Number(seconds) * 1000 : 0;
    return { kind: 'retry', status, error: `the endpoint answered ${status}`, retryAfterMs };
  }
  const why =
    status >= 300 && status < 400
      ? `the endpoint answered ${status} (redirect); webhooks do not follow redirects`
      : `the endpoint answered ${status}`;
  return { kind: 'failed', status, error: why };
}

/** `retryBaseMs · 2^(attempts−1)`, ±20 % so retries of many deliveries spread out, at most 1 h. */
function retryDelayMs(attempts: number, retryBaseMs: number, retryAfterMs = 0): number {
  const exponential = retryBaseMs * 2 ** Math.min(Math.max(attempts - 1, 0), 30);
  const jittered = exponential * (1 - JITTER + Math.random() * 2 * JITTER);
  return Math.round(Math.min(Math.max(jittered, retryAfterMs), MAX_RETRY_DELAY_MS));
}

function allowedAddress(address: string, policy: OriginPolicy): boolean {
  if (isForbiddenAddress(address)) return false;
  return policy.privateRanges === 'allow' || !isPrivateAddress(address);
}

/** Resolves like the API's origin check did, and drops addresses the guard refuses (DNS rebinding). */
function guardedLookup(policy: OriginPolicy): LookupFunction {
  return (hostname, options, callback) => {
    const resolving = policy.resolve
      ? policy.resolve(hostname)
      : dnsLookup(hostname, { all: true, verbatim: true }).then((found) =>
          found.map((a) => a.address),
        );
    resolving.then(
      (addresses) => {
        const allowed = addresses
          .filter((address) => allowedAddress(address, policy))
          .map((address) => ({ address, family: isIP(address) }))
          .filter((a) => !options.family || a.family === options.family);
        const first = allowed[0];
        if (!first) {
          const refused = new Error(
            `${hostname} resolves only to addresses Edgegate does not send webhooks to`,
          ) as NodeJS.ErrnoException;
          refused.code = 'EADDRNOTAVAIL';
          return callback(refused, '', 0);
        }
        if (options.all) callback(null, allowed);
        else callback(null, first.address, first.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, '', 0),
    );
  };
}

/** One POST, never following redirects; resolves with the status, rejects on network errors. */
function post(
  url: URL,
  body: string,
  headers: Record<string, string>,
  policy: OriginPolicy,
  timeoutMs: number,
): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    // An IP literal is dialled without a lookup, so the guard must see it here.
    const literal = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (isIP(literal) && !allowedAddress(literal, policy)) {
      reject(new Error(`${literal} is an address Edgegate does not send webhooks to`));
      return;
    }
    const client = url.protocol === 'https:' ? https : http;
    const request = client.request(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      lookup: guardedLookup(policy),
      // A connection of its own: a pooled socket would skip the guarded lookup.
      agent: false,
    });
    const timer = setTimeout(
      () => request.destroy(new Error(`no response within ${timeoutMs} ms`)),
      timeoutMs,
    );
    timer.unref();
    request.on('response', (response) => {
      const retryAfter = response.headers['retry-after'];
      resolve({ status: response.statusCode ?? 0, retryAfter });
      // The body is not read, only drained; the timer still ends an endless one.
      response.on('error', () => undefined);
      response.on('close', () => clearTimeout(timer));
      response.resume();
    });
    request.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    request.end(body);
  });
}

export function startWebhookDispatcher({
  db,
  keyring,
  logger,
  policy,
  bus,
  retryBaseMs = 5000,
  maxAgeMs = 24 * 3600_000,
  pollMs = 1000,
  timeoutMs = 10_000,
  batch = 20,
}: WebhookDispatcherOptions): WebhookDispatcher {
  const leaseMs = timeoutMs + LEASE_MARGIN_MS;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let wokenWhileRunning = false;

  /**
   * Leases due deliveries (SKIP LOCKED: a row another process is claiming is left to it). Fair
   * shares: at most PER_WEBHOOK rows of one endpoint and PER_WORKSPACE of one workspace per batch,
   * so a tenant whose endpoints hang cannot fill every batch while others' events wait.
   */
  async function claim(): Promise<ClaimedDelivery[]> {
    const { rows } = await sql<ClaimedDelivery>`
      WITH due AS (
        SELECT d.id, d.webhook_id, d.next_attempt_at FROM webhook_deliveries d
        WHERE d.status = 'pending' AND d.next_attempt_at <= now()
          AND (d.lease_until IS NULL OR d.lease_until < now())
        ORDER BY d.next_attempt_at
        LIMIT ${batch * CANDIDATES_PER_SLOT}
        FOR UPDATE SKIP LOCKED),
      ranked AS (
        SELECT due.id, due.next_attempt_at,
          row_number() OVER (PARTITION BY due.webhook_id ORDER BY due.next_attempt_at) AS per_webhook,
          row_number() OVER (PARTITION BY w.workspace_id ORDER BY due.next_attempt_at) AS per_workspace
        FROM due JOIN webhooks w ON w.id = due.webhook_id),
      chosen AS (
        SELECT id FROM ranked
        WHERE per_webhook <= ${PER_WEBHOOK} AND per_workspace <= ${PER_WORKSPACE}
        ORDER BY next_attempt_at
        LIMIT ${batch}),
      claimed AS (
        UPDATE webhook_deliveries SET
          lease_until = now() + ${leaseMs}::float8 * interval '1 millisecond',
          attempts = attempts + 1
        WHERE id IN (SELECT id FROM chosen)
        RETURNING id, attempts, webhook_id, event_id)
      SELECT c.id, c.attempts, c.webhook_id, w.url, w.secret, w.key_id, c.event_id,
        e.seq AS event_seq, e.workspace_id, e.type AS event_type, e.data AS event_data,
        e.created_at AS event_created_at
      FROM claimed c
      JOIN webhooks w ON w.id = c.webhook_id
      JOIN workspace_events e ON e.id = c.event_id`.execute(db);
    return rows;
  }

  async function attempt(delivery: ClaimedDelivery): Promise<Outcome> {
    const event: WorkspaceEventRow = {
      id: delivery.event_id,
      seq: delivery.event_seq,
      workspace_id: delivery.workspace_id,
      type: delivery.event_type,
      data: delivery.event_data,
      created_at: new Date(delivery.event_created_at),
    };
    const body = JSON.stringify(toEvent(event));
    let secrets: string[];
    try {
      const opened = await openSecret(
        db,
        keyring,
        delivery.key_id,
        webhookSecretContext(delivery.webhook_id),
        delivery.secret,
      );
      secrets = signingSecrets(parseWebhookSecrets(opened));
    } catch (error) {
      // A server fault, not the endpoint's: retried like one, so it too ends at the deadline.
      logger.error({ err: error, webhookId: delivery.webhook_id }, 'cannot open a webhook secret');
      const message = 'the signing secret could not be opened (see the server log)';
      return { kind: 'retry', status: null, error: message, retryAfterMs: 0 };
    }
    // Standard Webhooks headers, and the legacy signature beside them for receivers written before.
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = {
      'content-type': 'application/json',
      'user-agent': WEBHOOK_USER_AGENT,
      ...(await signWebhookMessage({ id: delivery.event_id, timestamp, body }, secrets)),
      [LEGACY_WEBHOOK_SIGNATURE_HEADER]: await signWebhook(body, secrets, timestamp),
      'edgegate-event-id': delivery.event_id,
      'edgegate-delivery-id': delivery.id,
    };
    try {
      const { status, retryAfter } = await post(
        new URL(delivery.url),
        body,
        headers,
        policy,
        timeoutMs,
      );
      return judge(status, retryAfter);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return { kind: 'retry', status: null, error: message, retryAfterMs: 0 };
    }
  }

  /**
   * Writes the outcome. `attempts` is the fence: if this lease expired and another process
   * claimed the row again, the count moved on and this stale outcome changes nothing.
   */
  async function record(delivery: ClaimedDelivery, outcome: Outcome): Promise<void> {
    const fence = sql`id = ${delivery.id} AND attempts = ${delivery.attempts} AND status = 'pending'`;
    if (outcome.kind === 'delivered') {
      await sql`UPDATE webhook_deliveries SET status = 'delivered', lease_until = NULL,
        last_status = ${outcome.status}, last_error = NULL, finished_at = now()
        WHERE ${fence}`.execute(db);
      return;
    }
    const error = outcome.error.slice(0, MAX_ERROR_LENGTH);
    let status: string | undefined;
    if (outcome.kind === 'failed') {
      status = 'failed';
      await sql`UPDATE webhook_deliveries SET status = 'failed', lease_until = NULL,
        last_status = ${outcome.status}, last_error = ${error}, finished_at = now()
        WHERE ${fence}`.execute(db);
    } else {
      // The last try happens at the deadline; failing then gives the delivery up.
      const delay = retryDelayMs(delivery.attempts, retryBaseMs, outcome.retryAfterMs);
      const deadline = sql`created_at + ${maxAgeMs}::float8 * interval '1 millisecond'`;
      const { rows } = await sql<{ status: string }>`UPDATE webhook_deliveries SET
        status = CASE WHEN now() >= ${deadline} THEN 'failed' ELSE 'pending' END,
        finished_at = CASE WHEN now() >= ${deadline} THEN now() END,
        next_attempt_at = LEAST(now() + ${delay}::float8 * interval '1 millisecond', ${deadline}),
        lease_until = NULL, last_status = ${outcome.status}, last_error = ${error}
        WHERE ${fence} RETURNING status`.execute(db);
      status = rows[0]?.status;
    }
    if (status === 'failed') {
      logger.warn(
        { webhookId: delivery.webhook_id, deliveryId: delivery.id, attempts: delivery.attempts },
        `webhook delivery failed: ${error}`,
      );
    }
  }

  async function deliver(delivery: ClaimedDelivery): Promise<void> {
    try {
      await record(delivery, await attempt(delivery));
    } catch (error) {
      // Left leased: another pass claims it again once the lease runs out.
      logger.error({ err: error, deliveryId: delivery.id }, 'webhook delivery could not run');
    }
  }

  async function drain(): Promise<void> {
    try {
      while (!stopped) {
        const claimed = await claim();
        await Promise.all(claimed.map(deliver));
        if (claimed.length < batch) return;
      }
    } catch (error) {
      logger.error({ err: error }, 'claiming webhook deliveries failed');
    }
  }

  function wake(): void {
    if (stopped) return;
    if (running) {
      wokenWhileRunning = true;
      return;
    }
    clearTimeout(timer);
    running = drain().finally(() => {
      running = undefined;
      if (stopped) return;
      if (wokenWhileRunning) {
        wokenWhileRunning = false;
        wake();
      } else {
        timer = setTimeout(wake, pollMs);
        timer.unref();
      }
    });
  }

  bus?.on('deliveries', wake);
  wake();

  return {
    wake,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      bus?.off('deliveries', wake);
      if (!running) return;
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([
        running,
        new Promise<void>((resolve) => {
          grace = setTimeout(resolve, timeoutMs + STOP_GRACE_MS);
          grace.unref();
        }),
      ]);
      clearTimeout(grace);
    },
  };
}
