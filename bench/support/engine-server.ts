// Baseline: oidc-provider alone with its in-memory adapter answering client_credentials grants.
import { createServer } from 'node:http';
import { parentPort } from 'node:worker_threads';
import Provider from 'oidc-provider';
import { answerCpuQueries } from './workers.ts';

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
const server = createServer(provider.callback());
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const address = server.address();
answerCpuQueries(parentPort!);
parentPort!.postMessage({
  url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
});
parentPort!.on('message', (message: { stop?: boolean }) => {
  if (message.stop) server.close(() => process.exit(0));
});
