// Baseline: oidc-provider alone with its in-memory adapter answering client_credentials grants.
import Provider from 'oidc-provider';
import { serveOnLoopback } from './workers.ts';

const provider = new Provider('http://127.0.0.1', {
  clients: [
    {
      client_id: 'bench',
      client_secret: 'bench-secret-bench-secret-bench-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } },
});
await serveOnLoopback(provider.callback());
