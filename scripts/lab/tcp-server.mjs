// A backend for traffic tests: answers every TCP connection (and UDP datagram) with its name.
// Usage: node tcp-server.mjs NAME PORT [udp]
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

const [name, port, mode] = process.argv.slice(2);
if (mode === 'udp') {
  const socket = createSocket(port.includes(':') ? 'udp6' : 'udp4');
  socket.on('message', (message, remote) => socket.send(`${name} ${remote.address}\n`, remote.port, remote.address));
  socket.bind(Number(port), () => console.log('ready'));
} else {
  // Each connection gets "NAME CLIENT-ADDRESS\n"; a connection that sends "hold" stays open and
  // answers every later line, so tests can keep an established connection across changes.
  createServer((socket) => {
    socket.write(`${name} ${socket.remoteAddress}\n`);
    socket.on('data', (data) => {
      if (data.toString().includes('close')) socket.end();
      else socket.write(`${name} ${data.toString().trim()}\n`);
    });
    socket.on('error', () => {});
    // Idle connections go after 5 minutes: the soak holds one across many agent restarts.
    socket.setTimeout(300_000, () => socket.destroy());
  }).listen(Number(port), '::', () => console.log('ready'));
}
