// Structured logs with pino: JSON for machines, pretty lines when a person watches a terminal.
import { pino, type Logger } from 'pino';

/**
 * A request URL fit for logs: invitation tokens in paths and every query value (codes, user
 * codes, `next` links that carry tokens) are masked.
 */
export function redactUrl(url: string): string {
  const [path = '', query] = url.split('?', 2);
  // Invitation and connect-session tokens ride in the path.
  const safePath = path
    .replace(/\/invite\/[^/]+/, '/invite/[redacted]')
    .replace(/\/connect\/egct_[^/]+/, '/connect/[redacted]')
    .replace(/\/v1\/connect\/sessions\/[^/]+/, '/v1/connect/sessions/[redacted]');
  if (query === undefined) return safePath;
  const keys = query
    .split('&')
    .filter(Boolean)
    .map((pair) => `${pair.split('=', 1)[0]}=[redacted]`);
  return `${safePath}?${keys.join('&')}`;
}

export function createLogger(level: string, options: { pretty?: boolean } = {}): Logger {
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  return pino({
    level,
    serializers: {
      req(req: {
        method?: string;
        url?: string;
        headers?: Record<string, unknown>;
        socket?: { remoteAddress?: string };
      }) {
        return {
          method: req.method,
          url: redactUrl(req.url ?? ''),
          host: req.headers?.host,
          remoteAddress: req.socket?.remoteAddress,
        };
      },
    },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'res.headers["set-cookie"]',
        '*.password',
        '*.secret',
        '*.token',
      ],
      censor: '[redacted]',
    },
    ...(pretty
      ? {
          transport: {
            target: 'pino-pretty',
            options: { translateTime: 'HH:MM:ss', ignore: 'pid,hostname' },
          },
        }
      : {}),
  });
}
