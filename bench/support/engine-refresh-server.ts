// Reference: oidc-provider alone with its in-memory adapter answering refresh_token grants (rotated
// on use, as Edgegate's are), to show what the engine's own refresh grant costs next to its
// client_credentials ceiling. Answers `{mint: n}` with n fresh refresh tokens, each on its own grant.
import Provider from 'oidc-provider';
import { serveOnLoopback } from './workers.ts';

const HOUR = 3600;
const provider = new Provider('http://127.0.0.1', {
  clients: [
    {
      client_id: 'bench',
      client_secret: 'bench-secret-bench-secret-bench-secret',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['https://partner.example/cb'],
    },
  ],
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  rotateRefreshToken: true,
  ttl: { AccessToken: HOUR, Grant: 24 * HOUR, RefreshToken: 24 * HOUR, IdToken: HOUR },
  features: { devInteractions: { enabled: false } },
});
const port = await serveOnLoopback(provider.callback());
port.on('message', async (message: { mint?: number }) => {
  if (!message.mint) return;
  const client = await provider.Client.find('bench');
  if (!client) throw new Error('the bench client is missing');
  const tokens = [];
  for (let i = 0; i < message.mint; i++) {
    const grant = new provider.Grant({ clientId: 'bench', accountId: 'user-1' });
    grant.addOIDCScope('offline_access');
    const grantId = await grant.save();
    const token = new provider.RefreshToken({
      client,
      accountId: 'user-1',
      grantId,
      scope: 'offline_access',
      gty: 'authorization_code',
    });
    tokens.push(await token.save());
  }
  port.postMessage({ tokens });
});
