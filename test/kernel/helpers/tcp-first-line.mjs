// Prints the first line a TCP server sends, then closes. Bounded: 5 s.
// Usage: node tcp-first-line.mjs HOST PORT
import { connect } from 'node:net';

const [host, port] = process.argv.slice(2);
const socket = connect({ host, port: Number(port) });
let text = '';
socket.setEncoding('utf8');
socket.on('data', (data) => {
  text += data;
  if (text.includes('\n')) {
    process.stdout.write(text.slice(0, text.indexOf('\n') + 1));
    socket.destroy();
  }
});
socket.on('error', (error) => {
  console.error(`tcp-first-line: ${error.message}`);
  process.exit(1);
});
setTimeout(() => {
  console.error('tcp-first-line: no answer within 5 s');
  process.exit(1);
}, 5000).unref();
