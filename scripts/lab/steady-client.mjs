// A client that connects again and again (one connection every ~20 ms, alternating targets) until
// its stdin ends, printing `ok INDEX` for every answer and `fail INDEX TIME REASON` for every
// failure. Bounded: each connection 10 s (a refused or reset connection fails at once; a starved
// machine answers late but answers), the whole run MAX_SECONDS.
// Usage: node steady-client.mjs '[{"host":"10.96.0.10","port":80},...]' MAX_SECONDS
import { connect } from 'node:net';

const targets = JSON.parse(process.argv[2]);
const deadline = Date.now() + Number(process.argv[3] ?? 300) * 1000;
let stopping = false;
process.stdin.on('data', () => {
  stopping = true;
});
process.stdin.on('end', () => {
  stopping = true;
});
const once = (host, port) =>
  new Promise((resolve) => {
    const socket = connect({ host, port });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('no answer in 10 s');
    }, 10_000);
    socket.setEncoding('utf8');
    socket.on('data', (data) => {
      text += data;
      if (text.includes('\n')) {
        clearTimeout(timer);
        socket.end('close\n');
        resolve(null);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      resolve(error.code || error.message);
    });
  });
console.log('started');
for (let i = 0; !stopping && Date.now() < deadline; i++) {
  const index = i % targets.length;
  const error = await once(targets[index].host, targets[index].port);
  console.log(error === null ? `ok ${index}` : `fail ${index} ${new Date().toISOString()} ${error}`);
  await new Promise((resolve) => setTimeout(resolve, 20));
}
console.log('done');
