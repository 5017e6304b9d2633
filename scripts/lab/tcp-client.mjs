// Opens COUNT sequential TCP connections to HOST:PORT and prints, as JSON, how many answers each
// backend name gave. Bounded: each connection times out after 10 s (a connection the proxy drops
// still fails; a starved machine answers late but answers), the whole run after 180 s.
// Usage: node tcp-client.mjs HOST PORT COUNT
import { connect } from 'node:net';

const [host, port, count] = process.argv.slice(2);
const deadline = Date.now() + 180_000;
const answers = {};
let failures = 0;

function once() {
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(port) });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(null);
    }, 10_000);
    socket.on('data', (data) => {
      text += data.toString();
      if (text.includes('\n')) {
        clearTimeout(timer);
        socket.end('close\n');
        resolve(text.split(' ')[0]);
      }
    });
    socket.on('error', () => {
      clearTimeout(timer);
      resolve(null);
    });
  });
}

for (let i = 0; i < Number(count) && Date.now() < deadline; i++) {
  const name = await once();
  if (name === null) failures++;
  else answers[name] = (answers[name] ?? 0) + 1;
}
console.log(JSON.stringify({ answers, failures }));
