// The physical limit of a Node proxy here: a plain TCP pipe to the origin, no parsing at all.
import net from 'node:net';

const [originPort] = process.argv.slice(2).map(Number);
const server = net.createServer({ noDelay: true }, (client) => {
  const origin = net.connect({ host: '127.0.0.1', port: originPort as number, noDelay: true });
  client.pipe(origin).pipe(client);
  client.on('error', () => origin.destroy());
  origin.on('error', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as net.AddressInfo).port }) + '\n');
});
