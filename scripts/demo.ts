// `npm run demo`: kipvs's main job on the embedded default. Inside the sandbox kernel it builds a
// small cluster of network namespaces (a node, a client outside it, three pods each running a
// server), runs `kipvs agent --once` on examples/, sends real requests to a ClusterIP and a
// NodePort, and prints `kipvs inspect` and how many requests each backend served.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createTopology } from '../test/kernel/helpers/topology.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'cli', 'main.js');

function kipvs(args: string[]): string {
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`kipvs ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

const topology = createTopology(3);
try {
  await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
  console.log(`cluster: node ${topology.node.name} (${topology.nodeAddress}), client ${topology.clientAddress}, pods ${topology.pods.map((p) => p.address).join(', ')}\n`);
  console.log('$ kipvs agent --once --source examples --scheduler rr');
  kipvs(['agent', '--once', '--source', join(root, 'examples'), '--netns', topology.node.name, '--hostname-override', 'node-a', '--scheduler', 'rr']);
  for (const [label, address, port] of [
    ['ClusterIP 10.96.0.10:80', '10.96.0.10', 80],
    [`NodePort ${topology.nodeAddress}:30080`, topology.nodeAddress, 30080],
  ] as const) {
    const { answers, failures } = topology.request(address, port, 30);
    console.log(`30 requests from the client to ${label}: ${Object.entries(answers).map(([pod, n]) => `${pod} ${n}`).join(', ')}; failed ${failures}`);
  }
  console.log('\n$ kipvs inspect');
  process.stdout.write(kipvs(['inspect', '--netns', topology.node.name]));
  console.log('\n$ kipvs inspect --stats');
  process.stdout.write(kipvs(['inspect', '--stats', '--netns', topology.node.name]));
  console.log('\n$ kipvs cleanup');
  process.stdout.write(kipvs(['cleanup', '--netns', topology.node.name]));
} finally {
  topology.destroy();
}
