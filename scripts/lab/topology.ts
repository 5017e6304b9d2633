// A small cluster made of network namespaces, for the demo, the soak and the traffic tests: a node (where IPVS is programmed),
// a client outside it, and pods behind it, joined by veth pairs. Every address is inside
// namespaces this helper makes; nothing leaves the sandbox.
//
//   client (10.200.0.2) --- (10.200.0.1) node (10.201.N.1) --- (10.201.N.2) pod-N
//   with { ipv6: true } also fd00:200::2 / fd00:200::1 and fd00:201:N::1 / fd00:201:N::2
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createTestNetns, type TestNetns } from './netns.js';
import { GENEROUS_MS } from './wait.js';

const helpers = import.meta.dirname;

export interface Pod {
  readonly name: string;
  readonly ns: TestNetns;
  readonly address: string;
}

export interface Topology {
  readonly node: TestNetns;
  readonly client: TestNetns;
  readonly pods: readonly Pod[];
  readonly clientAddress: string;
  readonly nodeAddress: string;
  /** Set with { ipv6: true }. */
  readonly nodeAddress6?: string;
  /** Starts the echo server in a pod (TCP, or UDP) and waits until it listens (up to GENEROUS_MS). */
  startServer(pod: Pod, port: number, protocol?: 'tcp' | 'udp'): Promise<void>;
  /** Makes `count` TCP connections from the client namespace; returns answers per backend. */
  request(address: string, port: number, count: number): { answers: Record<string, number>; failures: number };
  destroy(): void;
}

function veth(a: TestNetns, aName: string, aAddress: string, b: TestNetns, bName: string, bAddress: string): void {
  a.run('ip', ['link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name]);
  a.run('ip', ['addr', 'add', aAddress, 'dev', aName]);
  a.run('ip', ['link', 'set', aName, 'up']);
  b.run('ip', ['addr', 'add', bAddress, 'dev', bName]);
  b.run('ip', ['link', 'set', bName, 'up']);
}

function addIpv6(ns: TestNetns, device: string, address: string): void {
  // nodad: usable at once, no duplicate address detection to wait for.
  ns.run('ip', ['-6', 'addr', 'add', address, 'dev', device, 'nodad']);
}

export function createTopology(podCount: number, options: { readonly ipv6?: boolean } = {}): Topology {
  const node = createTestNetns('kipvs-node');
  const client = createTestNetns('kipvs-client');
  const pods: Pod[] = [];
  const servers: ChildProcess[] = [];
  try {
    node.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    veth(client, 'eth0', '10.200.0.2/24', node, 'to-client', '10.200.0.1/24');
    client.run('ip', ['route', 'add', 'default', 'via', '10.200.0.1']);
    if (options.ipv6) {
      node.run('sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
      addIpv6(client, 'eth0', 'fd00:200::2/64');
      addIpv6(node, 'to-client', 'fd00:200::1/64');
      client.run('ip', ['-6', 'route', 'add', 'default', 'via', 'fd00:200::1']);
    }
    for (let i = 0; i < podCount; i++) {
      const ns = createTestNetns(`kipvs-pod${i}`);
      const address = `10.201.${i}.2`;
      veth(ns, 'eth0', `${address}/24`, node, `to-pod${i}`, `10.201.${i}.1/24`);
      ns.run('ip', ['route', 'add', 'default', 'via', `10.201.${i}.1`]);
      if (options.ipv6) {
        addIpv6(ns, 'eth0', `fd00:201:${i}::2/64`);
        addIpv6(node, `to-pod${i}`, `fd00:201:${i}::1/64`);
        ns.run('ip', ['-6', 'route', 'add', 'default', 'via', `fd00:201:${i}::1`]);
      }
      pods.push({ name: `pod${i}`, ns, address });
    }
  } catch (error) {
    for (const pod of pods) pod.ns.destroy();
    client.destroy();
    node.destroy();
    throw error;
  }
  return {
    node,
    client,
    pods,
    clientAddress: '10.200.0.2',
    nodeAddress: '10.200.0.1',
    ...(options.ipv6 ? { nodeAddress6: 'fd00:200::1' } : {}),
    startServer(pod, port, protocol = 'tcp') {
      const args = ['netns', 'exec', pod.ns.name, process.execPath, join(helpers, 'tcp-server.mjs'), pod.name, String(port)];
      if (protocol === 'udp') args.push('udp');
      const server = spawn('ip', args, { stdio: ['ignore', 'pipe', 'inherit'] });
      servers.push(server);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`the server in ${pod.name} was not listening on port ${String(port)} within ${String(GENEROUS_MS / 1000)} s`));
        }, GENEROUS_MS);
        server.stdout.once('data', () => {
          clearTimeout(timer);
          resolve();
        });
        server.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`the server in ${pod.name} exited with ${String(code)} before listening`));
        });
      });
    },
    request(address, port, count) {
      const output = client.run(process.execPath, [join(helpers, 'tcp-client.mjs'), address, String(port), String(count)]);
      return JSON.parse(output) as { answers: Record<string, number>; failures: number };
    },
    destroy() {
      for (const server of servers) server.kill('SIGKILL');
      for (const pod of pods) pod.ns.destroy();
      client.destroy();
      node.destroy();
    },
  };
}
