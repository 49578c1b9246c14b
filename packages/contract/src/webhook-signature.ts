// Webhook signatures: `Edgegate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
// Web Crypto only, so the same code runs in the server, in Node partners and in edge runtimes.

export const WEBHOOK_SIGNATURE_HEADER = 'edgegate-signature';
/** A signature older (or newer) than this is refused: a captured delivery cannot be replayed later. */
export const WEBHOOK_TOLERANCE_SECONDS = 300;

const encoder = new TextEncoder();

function hmacKey(secret: string, usage: 'sign' | 'verify') {
  return crypto.subtle.importKey(
    'raw',
    encoder.encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    [usage],
  );
}

const toHex = (bytes: ArrayBuffer) =>
  [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');

export async function signWebhook(
  body: string,
  secret: string,
  timestamp = Math.floor(Date.now() / 1000),
): Promise<string> {
  const mac = await crypto.subtle.sign(
    'HMAC',
    await hmacKey(secret, 'sign'),
    encoder.encode(`${timestamp}.${body}`),
  );
  return `t=${timestamp},v1=${toHex(mac)}`;
}

export class WebhookSignatureError extends Error {
  override name = 'WebhookSignatureError';
}

/**
 * Checks a delivery: the header's timestamp is recent and one of its `v1` signatures is the HMAC
 * of `t.body` under `secret` (compared in constant time by Web Crypto). Throws
 * `WebhookSignatureError` saying what is wrong; returns the parsed event body otherwise.
 */
export async function verifyWebhook(
  body: string,
  header: string | null | undefined,
  secret: string,
  options: { toleranceSeconds?: number; now?: number } = {},
): Promise<unknown> {
  if (!header) throw new WebhookSignatureError('no Edgegate-Signature header');
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const [name, value] = part.trim().split('=', 2);
    if (name === 't' && value && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    if (name === 'v1' && value && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
  }
  if (timestamp === undefined || signatures.length === 0)
    throw new WebhookSignatureError('the Edgegate-Signature header is malformed');
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > (options.toleranceSeconds ?? WEBHOOK_TOLERANCE_SECONDS))
    throw new WebhookSignatureError('the signature timestamp is too old or in the future');
  const key = await hmacKey(secret, 'verify');
  const data = encoder.encode(`${timestamp}.${body}`);
  for (const hex of signatures) {
    const bytes = new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
    if (await crypto.subtle.verify('HMAC', key, bytes, data)) return JSON.parse(body);
  }
  throw new WebhookSignatureError('no signature matches this body and secret');
}
