// Holds one TCP connection open: prints every line the server sends, sends every line read from
// stdin. Bounded: it closes itself after SECONDS (default 30). With HEARTBEAT (seconds, 0: none)
// it also sends a line of its own whenever the connection has been quiet that long, and swallows
// the answer: a connection held for long must not go idle, or the pod server (tcp-server.mjs,
// 5 minutes) and IPVS (the TCP established timeout, 15 minutes) end it, whatever the proxy does.
// One line is in flight at a time: the server answers each read as one line, so two lines that
// arrived together would come back as one.
// Usage: node tcp-hold.mjs HOST PORT [SECONDS] [HEARTBEAT]
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const [host, port, seconds = '30', heartbeat = '0'] = process.argv.slice(2);
const socket = connect({ host, port: Number(port) });
socket.setEncoding('utf8');
/** Lines from stdin waiting for the one in flight to be answered. */
const pending = [];
/** What the line in flight is: 'stdin', 'heartbeat' or undefined (none). */
let inFlight;
let received = '';
let greeted = false;
let lastActivity = Date.now();
const sendNext = () => {
  if (inFlight !== undefined || pending.length === 0) return;
  inFlight = 'stdin';
  lastActivity = Date.now();
  socket.write(pending.shift());
};
socket.on('data', (data) => {
  received += data;
  let newline;
  while ((newline = received.indexOf('\n')) >= 0) {
    const line = received.slice(0, newline + 1);
    received = received.slice(newline + 1);
    lastActivity = Date.now();
    if (!greeted) {
      // The server's first line (its name): no answer to anything.
      greeted = true;
      process.stdout.write(line);
      continue;
    }
    if (inFlight !== 'heartbeat') process.stdout.write(line);
    inFlight = undefined;
    sendNext();
  }
});
socket.on('error', (error) => {
  console.error(`tcp-hold: ${error.message}`);
  process.exit(1);
});
socket.on('end', () => console.error('tcp-hold: the server ended the connection'));
socket.on('close', () => process.exit(0));
createInterface({ input: process.stdin }).on('line', (line) => {
  pending.push(`${line}\n`);
  sendNext();
});
setTimeout(() => socket.destroy(), Number(seconds) * 1000).unref();
if (Number(heartbeat) > 0) {
  let beats = 0;
  setInterval(
    () => {
      if (!greeted || inFlight !== undefined || Date.now() - lastActivity < Number(heartbeat) * 1000) return;
      inFlight = 'heartbeat';
      lastActivity = Date.now();
      socket.write(`heartbeat ${String(++beats)}\n`);
    },
    Math.max(1000, (Number(heartbeat) * 1000) / 4),
  ).unref();
}
process.on('SIGTERM', () => socket.destroy());
