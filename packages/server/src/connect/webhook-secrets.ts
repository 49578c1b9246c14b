// The signing secrets of one webhook endpoint as sealed at rest: one `whsec_…` string, or during a
// rotation a JSON pair of the new secret and the previous one with the end of their overlap. One
// sealed value, so key rotation (keyring.ts) re-seals both together.

export interface WebhookSecrets {
  current: string;
  previous?: { secret: string; until: string } | undefined;
}

export function parseWebhookSecrets(plaintext: string): WebhookSecrets {
  // A plain secret never starts with `{` (it starts with whsec_): the JSON form is unambiguous.
  if (!plaintext.startsWith('{')) return { current: plaintext };
  return JSON.parse(plaintext) as WebhookSecrets;
}

export function serializeWebhookSecrets(secrets: WebhookSecrets): string {
  return secrets.previous ? JSON.stringify(secrets) : secrets.current;
}

/** The secrets deliveries are signed with now: the current one, and the previous until its overlap ends. */
export function signingSecrets(secrets: WebhookSecrets, now = new Date()): string[] {
  const previous = secrets.previous;
  return previous && new Date(previous.until) > now
    ? [secrets.current, previous.secret]
    : [secrets.current];
}
