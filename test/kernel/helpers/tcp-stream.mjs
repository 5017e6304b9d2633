// New TCP connections one after the other for a while, each line `{"at": ms, "name": backend}`
// (or `"failed": reason`) on stdout, `at` being Date.now() when the connection was opened.
// Bounded: DURATION_MS in all, 2 s per connection.
// Usage: node tcp-stream.mjs HOST PORT DURATION_MS
import { connect } from 'node:net';

const [host, port, duration] = process.argv.slice(2);
const until = Date.now() + Number(duration);

function once() {
  return new Promise((resolve) => {
    const at = Date.now();
    const socket = connect({ host, port: Number(port) });
    let text = '';
    const done = (result) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ at, ...result });
    };
    const timer = setTimeout(() => done({ failed: 'no answer within 2 s' }), 2000);
    socket.setEncoding('utf8');
    socket.on('data', (data) => {
      text += data;
      if (text.includes('\n')) done({ name: text.split(' ')[0] });
    });
    socket.on('error', (error) => done({ failed: error.message }));
  });
}

while (Date.now() < until) {
  process.stdout.write(`${JSON.stringify(await once())}\n`);
  await new Promise((resolve) => setTimeout(resolve, 10));
}
