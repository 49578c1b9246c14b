// Webhook signatures, the Standard Webhooks way (https://www.standardwebhooks.com): headers
// `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
// "id.timestamp.body">`, one signature per secret in use (space-separated during a rotation), the
// key being the base64 after `whsec_`. The older `Edgegate-Signature: t=…,v1=<hex>` is still sent
// beside them for receivers written before (see docs/connect.md). Web Crypto only, so the same
// code runs in the server, in Node partners and in edge runtimes.

export const WEBHOOK_ID_HEADER = 'webhook-id';
export const WEBHOOK_TIMESTAMP_HEADER = 'webhook-timestamp';
export const WEBHOOK_SIGNATURE_HEADER = 'webhook-signature';
/** The pre-Standard-Webhooks header (`t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`). */
export const LEGACY_WEBHOOK_SIGNATURE_HEADER = 'edgegate-signature';
/** A signature older (or newer) than this is refused: a captured delivery cannot be replayed later. */
export const WEBHOOK_TOLERANCE_SECONDS = 300;
export const WEBHOOK_SECRET_PREFIX = 'whsec_';

const encoder = new TextEncoder();

function hmacKey(key: Uint8Array<ArrayBuffer>, usage: 'sign' | 'verify') {
  return crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, [usage]);
}

const toHex = (bytes: ArrayBuffer) =>
  [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Standard base64, and the URL-safe alphabet of secrets made before Standard Webhooks. */
function fromBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  const standard = text.replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(standard)) return undefined;
  try {
    const binary = atob(standard.padEnd(Math.ceil(standard.length / 4) * 4, '='));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/** The HMAC key of a `whsec_<base64>` secret: the decoded bytes after the prefix. */
function secretKey(secret: string): Uint8Array<ArrayBuffer> {
  const bytes = secret.startsWith(WEBHOOK_SECRET_PREFIX)
    ? fromBase64(secret.slice(WEBHOOK_SECRET_PREFIX.length))
    : undefined;
  if (!bytes || bytes.length === 0)
    throw new WebhookSignatureError('the secret is not a whsec_<base64> webhook secret');
  return bytes;
}

/** A new signing secret: `whsec_` and 32 random bytes in standard base64. */
export function newWebhookSecret(): string {
  return WEBHOOK_SECRET_PREFIX + toBase64(crypto.getRandomValues(new Uint8Array(32)));
}

export interface WebhookMessage {
  /** Unique per event; the same on every retry, so a receiver can drop duplicates. */
  id: string;
  /** Unix seconds of this attempt. */
  timestamp: number;
  body: string;
}

/**
 * The Standard Webhooks headers of one attempt, signed with every secret given (the current one
 * and, during a rotation, the previous): `webhook-signature` lists one `v1,…` per secret.
 */
export async function signWebhookMessage(
  message: WebhookMessage,
  secrets: readonly string[],
): Promise<Record<string, string>> {
  const data = encoder.encode(`${message.id}.${message.timestamp}.${message.body}`);
  const signatures: string[] = [];
  for (const secret of secrets) {
    const mac = await crypto.subtle.sign('HMAC', await hmacKey(secretKey(secret), 'sign'), data);
    signatures.push(`v1,${toBase64(new Uint8Array(mac))}`);
  }
  return {
    [WEBHOOK_ID_HEADER]: message.id,
    [WEBHOOK_TIMESTAMP_HEADER]: String(message.timestamp),
    [WEBHOOK_SIGNATURE_HEADER]: signatures.join(' '),
  };
}

/**
 * The legacy `Edgegate-Signature` value: `t=<unix seconds>` and one `v1=<hex HMAC of "t.body">`
 * per secret, keyed by the secret's text as it always was. Kept for receivers written before.
 */
export async function signWebhook(
  body: string,
  secret: string | readonly string[],
  timestamp = Math.floor(Date.now() / 1000),
): Promise<string> {
  const parts = [`t=${timestamp}`];
  for (const one of typeof secret === 'string' ? [secret] : secret) {
    const mac = await crypto.subtle.sign(
      'HMAC',
      await hmacKey(encoder.encode(one), 'sign'),
      encoder.encode(`${timestamp}.${body}`),
    );
    parts.push(`v1=${toHex(mac)}`);
  }
  return parts.join(',');
}

export class WebhookSignatureError extends Error {
  override name = 'WebhookSignatureError';
}

/** Request headers as Node (`req.headers`), Fetch (`Headers`) or a plain object gives them. */
export type WebhookHeaders =
  { get(name: string): string | null } | Record<string, string | string[] | undefined>;

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value[0] : value;
}

export interface VerifyWebhookOptions {
  toleranceSeconds?: number;
  /** Unix seconds; for tests. */
  now?: number;
}

function checkTimestamp(timestamp: number, options: VerifyWebhookOptions): void {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > (options.toleranceSeconds ?? WEBHOOK_TOLERANCE_SECONDS))
    throw new WebhookSignatureError('the signature timestamp is too old or in the future');
}

/**
 * Checks a delivery and returns its parsed body; throws `WebhookSignatureError` saying what is
 * wrong otherwise. Give the **raw** body and the request's headers: the Standard Webhooks
 * headers are checked (the timestamp within 5 minutes, any `v1` signature of `id.timestamp.body`
 * under one of `secret`'s, compared in constant time by Web Crypto). `secret` may list the old and
 * the new secret while you roll a rotation out.
 *
 * Receivers written before Standard Webhooks passed the `Edgegate-Signature` header's value as a
 * string instead of the headers; that form still works and checks the legacy signature.
 */
export async function verifyWebhook(
  body: string,
  headers: WebhookHeaders | string | null | undefined,
  secret: string | readonly string[],
  options: VerifyWebhookOptions = {},
): Promise<unknown> {
  const secrets = typeof secret === 'string' ? [secret] : [...secret];
  if (headers === null || headers === undefined || typeof headers === 'string')
    return verifyLegacy(body, headers, secrets, options);
  const id = header(headers, WEBHOOK_ID_HEADER);
  const timestampText = header(headers, WEBHOOK_TIMESTAMP_HEADER);
  const signatureText = header(headers, WEBHOOK_SIGNATURE_HEADER);
  if (id === undefined || timestampText === undefined || signatureText === undefined)
    throw new WebhookSignatureError(
      'the webhook-id, webhook-timestamp and webhook-signature headers are required',
    );
  if (!/^\d{1,12}$/.test(timestampText))
    throw new WebhookSignatureError('the webhook-timestamp header is malformed');
  const timestamp = Number(timestampText);
  checkTimestamp(timestamp, options);
  const signatures = signatureText
    .split(' ')
    .filter((part) => part.startsWith('v1,'))
    .map((part) => fromBase64(part.slice(3)))
    .filter(
      (bytes): bytes is Uint8Array<ArrayBuffer> => bytes !== undefined && bytes.length === 32,
    );
  if (signatures.length === 0)
    throw new WebhookSignatureError('the webhook-signature header has no v1 signature');
  const data = encoder.encode(`${id}.${timestamp}.${body}`);
  for (const one of secrets) {
    const key = await hmacKey(secretKey(one), 'verify');
    for (const signature of signatures) {
      if (await crypto.subtle.verify('HMAC', key, signature, data)) return JSON.parse(body);
    }
  }
  throw new WebhookSignatureError('no signature matches this body and secret');
}

async function verifyLegacy(
  body: string,
  value: string | null | undefined,
  secrets: readonly string[],
  options: VerifyWebhookOptions,
): Promise<unknown> {
  if (!value) throw new WebhookSignatureError('no Edgegate-Signature header');
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of value.split(',')) {
    const [name, text] = part.trim().split('=', 2);
    if (name === 't' && text && /^\d{1,12}$/.test(text)) timestamp = Number(text);
    if (name === 'v1' && text && /^[0-9a-f]{64}$/.test(text)) signatures.push(text);
  }
  if (timestamp === undefined || signatures.length === 0)
    throw new WebhookSignatureError('the Edgegate-Signature header is malformed');
  checkTimestamp(timestamp, options);
  const data = encoder.encode(`${timestamp}.${body}`);
  for (const one of secrets) {
    const key = await hmacKey(encoder.encode(one), 'verify');
    for (const hex of signatures) {
      const bytes = new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
      if (await crypto.subtle.verify('HMAC', key, bytes, data)) return JSON.parse(body);
    }
  }
  throw new WebhookSignatureError('no signature matches this body and secret');
}
