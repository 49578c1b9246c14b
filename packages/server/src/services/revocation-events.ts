// Tells in-process caches of resolved credentials that some credential died (or came back to life),
// so they forget what they resolved at once.
const listeners = new Set<() => void>();

export function onCredentialsRevoked(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function credentialsRevoked(): void {
  for (const listener of listeners) listener();
}
