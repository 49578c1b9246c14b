// The floor of a Node server here: answers every Query with the same stored bytes, doing nothing else.
import net from 'node:net';

const answer = Buffer.from(process.argv[2] as string, 'base64');
const server = net.createServer({ noDelay: true }, (socket) => {
  let startup = true;
  socket.on('data', (chunk: Buffer) => {
    if (startup) {
      // AuthenticationOk, then ReadyForQuery: no real startup handling needed for the benchmark.
      startup = false;
      socket.write(Buffer.from('520000000800000000' + '5a0000000549', 'hex'));
      return;
    }
    let count = 0;
    for (let offset = 0; offset + 5 <= chunk.length; offset += chunk.readInt32BE(offset + 1) + 1)
      count += 1;
    socket.write(count === 1 ? answer : Buffer.concat(Array.from({ length: count }, () => answer)));
  });
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as net.AddressInfo).port }) + '\n');
});
