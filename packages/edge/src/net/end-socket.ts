// Ends a client connection after a last message without waiting for the client to close its side:
// a peer that never closes (or never reads) must not keep the descriptor.
import type net from 'node:net';

// How long a last message may take to reach the kernel before the connection is dropped anyway.
const LAST_WRITE_GRACE_MS = 5000;

/** Writes `last` (if any), then frees the socket once it is handed to the kernel. */
export function endSocket(socket: net.Socket, last?: Buffer): void {
  if (socket.destroyed || socket.writableEnded) return;
  const timer = setTimeout(() => socket.destroy(), LAST_WRITE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  // The kernel still sends what it holds, then FIN: the client reads the message, then EOF.
  const destroy = (): void => {
    socket.destroy();
  };
  if (last === undefined) socket.end(destroy);
  else socket.end(last, destroy);
}
