// `npm run example:partner`: starts the example partner app with its settings from the environment.
import { resolve } from 'node:path';
import { SCOPES, startPartnerApp } from './app.ts';

const HELP = `Usage: npm run example:partner [-- --help]

Acme Dashboards, an example Edgegate partner: connect an Edgegate workspace, create a cache for
your database and get the connection string to use.

Environment:
  EDGEGATE_URL           Edgegate's PUBLIC_URL (default http://localhost:8080)
  PARTNER_CLIENT_ID      client id of the app registered in Edgegate (required)
  PARTNER_CLIENT_SECRET  its client secret (required)
  PORT                   port of this app on 127.0.0.1 (default 3000)
  PARTNER_DATA_DIR       where tokens and .env (DATABASE_URL) are kept (default ./partner-data)
`;

const registration = (port: number) =>
  `Register this app in Edgegate once (the secret is shown only then):

  npx edgegate apps create --owner-user you@example.com --name "Acme Dashboards" \\
    --redirect-uri http://127.0.0.1:${port}/callback --scopes "${SCOPES.join(' ')}" --json

then start it with PARTNER_CLIENT_ID and PARTNER_CLIENT_SECRET set to what that printed.
`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(HELP);
  process.exit(0);
}

const env = process.env;
const port = Number(env.PORT ?? 3000);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`PORT must be a port number, not "${env.PORT}".\n`);
  process.exit(2);
}
const clientId = env.PARTNER_CLIENT_ID;
const clientSecret = env.PARTNER_CLIENT_SECRET;
if (!clientId || !clientSecret) {
  process.stderr.write(
    `PARTNER_CLIENT_ID and PARTNER_CLIENT_SECRET are required.\n\n${registration(port)}`,
  );
  process.exit(2);
}

const edgegateUrl = env.EDGEGATE_URL ?? 'http://localhost:8080';
const dataDir = resolve(env.PARTNER_DATA_DIR ?? 'partner-data');
const app = await startPartnerApp({ edgegateUrl, clientId, clientSecret, port, dataDir });
process.stdout.write(
  `Acme Dashboards is running at ${app.url} (open that address: the OAuth callback and the ` +
    `connect flow come back to it)\n` +
    `  Edgegate:    ${edgegateUrl}\n` +
    `  Data:        ${dataDir} (edgegate.json, .env)\n` +
    `  Redirect URI registered in Edgegate must be ${app.url}/callback\n`,
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void app.close().then(() => process.exit(0));
  });
}
