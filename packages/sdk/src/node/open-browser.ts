// Opens a URL in the user's default browser with the platform's own opener.
import { spawn } from 'node:child_process';

/** Resolves once the opener succeeded; rejects when there is none (a server, a container) or it failed. */
export function openSystemBrowser(url: string): Promise<void> {
  const [command, args] = openerOf(url);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: 'ignore',
      detached: true,
      windowsVerbatimArguments: process.platform === 'win32',
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} exited with code ${code}`)),
    );
    child.unref();
  });
}

function openerOf(url: string): [string, string[]] {
  if (process.platform === 'darwin') return ['open', [url]];
  // `start` is a cmd built-in; its first quoted argument is a window title, and quoting the URL
  // keeps cmd from splitting it at `&`.
  if (process.platform === 'win32') return ['cmd', ['/c', 'start', '""', `"${url}"`]];
  return ['xdg-open', [url]];
}
