// Holds one TCP connection open: prints every line the server sends, sends every line read from
// stdin. Bounded: it closes itself after SECONDS (default 30).
// Usage: node tcp-hold.mjs HOST PORT [SECONDS]
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const [host, port, seconds = '30'] = process.argv.slice(2);
const socket = connect({ host, port: Number(port) });
socket.setEncoding('utf8');
socket.on('data', (data) => process.stdout.write(data));
socket.on('error', (error) => {
  console.error(`tcp-hold: ${error.message}`);
  process.exit(1);
});
socket.on('close', () => process.exit(0));
createInterface({ input: process.stdin }).on('line', (line) => socket.write(`${line}\n`));
setTimeout(() => socket.destroy(), Number(seconds) * 1000).unref();
process.on('SIGTERM', () => socket.destroy());
