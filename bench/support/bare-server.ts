// Baseline: a bare Fastify route, the ceiling of any route in this stack.
import { parentPort } from 'node:worker_threads';
import Fastify from 'fastify';
import { answerCpuQueries } from './workers.ts';

const app = Fastify();
app.get('/hello', async () => ({ hello: 'world' }));
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
answerCpuQueries(parentPort!);
parentPort!.postMessage({
  url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
});
parentPort!.on('message', async (message: { stop?: boolean }) => {
  if (message.stop) {
    await app.close();
    process.exit(0);
  }
});
