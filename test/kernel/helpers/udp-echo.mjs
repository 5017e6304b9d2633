// A UDP backend for either family: answers every datagram with "NAME CLIENT-ADDRESS\n".
// Usage: node udp-echo.mjs NAME PORT udp4|udp6 (udp6 is IPv6 only, so it can share the port
// number with an IPv4 server)
import { createSocket } from 'node:dgram';

const [name, port, type] = process.argv.slice(2);
const socket = createSocket({ type, ipv6Only: type === 'udp6' });
socket.on('message', (message, remote) => socket.send(`${name} ${remote.address}\n`, remote.port, remote.address));
socket.bind(Number(port), () => console.log('ready'));
