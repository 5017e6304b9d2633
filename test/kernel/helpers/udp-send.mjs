// Sends COUNT UDP datagrams to HOST:PORT from one socket bound to SOURCE_PORT (so every datagram
// belongs to one conntrack flow), and prints, as JSON, how many answers each backend name gave.
// Bounded: each datagram waits at most 2 s for its answer, the whole run at most 30 s.
// Usage: node udp-send.mjs HOST PORT SOURCE_PORT COUNT
import { createSocket } from 'node:dgram';

const [host, port, sourcePort, count] = process.argv.slice(2);
const deadline = Date.now() + 30_000;
const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
await new Promise((resolve, reject) => {
  socket.once('error', reject);
  socket.bind(Number(sourcePort), resolve);
});

const answers = {};
let failures = 0;
let waiting;
socket.on('message', (message) => waiting?.(message.toString().split(' ')[0]));

function once(index) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), 2000);
    waiting = (name) => {
      clearTimeout(timer);
      resolve(name);
    };
    socket.send(`ping ${index}`, Number(port), host);
  });
}

for (let i = 0; i < Number(count) && Date.now() < deadline; i++) {
  const name = await once(i);
  if (name === null) failures++;
  else answers[name] = (answers[name] ?? 0) + 1;
}
socket.close();
console.log(JSON.stringify({ answers, failures }));
