// `npm run demo`: kipvs's main job on the embedded default. Inside the sandbox kernel it builds a
// small cluster of network namespaces (a node, a client outside it, three pods each running a
// server; scripts/lab/), runs `kipvs agent --once` on examples/, sends real requests to a
// ClusterIP and a NodePort, and prints `kipvs inspect` and how many requests each backend served.
//
// Every step waits on its condition (a server listening, a virtual server present, a first answer)
// up to a generous deadline rather than for a fixed time, so that the demo holds on a busy machine;
// it prints a progress line per step, and a failure ends it with one line, never a stack trace.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createTopology, type Topology } from './lab/topology.js';
import { GENEROUS_MS, waitUntil } from './lab/wait.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'cli', 'main.js');
const started = Date.now();
const REQUESTS = 30;

function progress(step: string): void {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${step}`);
}

function kipvs(args: readonly string[]): string {
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  if (result.status !== 0) {
    const reason = result.error?.message ?? (result.stderr.trim().split('\n').at(-1) || `exit status ${String(result.status)}`);
    throw new Error(`kipvs ${args[0] ?? ''} failed: ${reason}`);
  }
  return result.stdout;
}

async function run(topology: Topology): Promise<void> {
  const node = topology.node.name;
  progress(`starting a server in each pod (${topology.pods.map((p) => p.address).join(', ')}) and waiting until it listens`);
  await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
  console.log(`\ncluster: node ${node} (${topology.nodeAddress}), client ${topology.clientAddress}, pods ${topology.pods.map((p) => p.address).join(', ')}\n`);
  console.log('$ kipvs agent --once --source examples --scheduler rr');
  kipvs(['agent', '--once', '--source', join(root, 'examples'), '--netns', node, '--hostname-override', 'node-a', '--scheduler', 'rr']);
  progress('waiting until the ClusterIP virtual server has its three real servers');
  await waitUntil('the virtual server 10.96.0.10:80 with three real servers', () => {
    const listing = topology.node.run('ipvsadm', ['-Ln', '-t', '10.96.0.10:80']);
    return topology.pods.every((pod) => listing.includes(`${pod.address}:8080`));
  });
  for (const [label, address, port] of [
    ['ClusterIP 10.96.0.10:80', '10.96.0.10', 80],
    [`NodePort ${topology.nodeAddress}:30080`, topology.nodeAddress, 30080],
  ] as const) {
    progress(`waiting for a first answer from the ${label}`);
    await waitUntil(`an answer from the ${label}`, () => topology.request(address, port, 1).failures === 0, GENEROUS_MS, 500);
    const { answers, failures } = topology.request(address, port, REQUESTS);
    console.log(
      `${String(REQUESTS)} requests from the client to ${label}: ${Object.entries(answers)
        .map(([pod, n]) => `${pod} ${String(n)}`)
        .join(', ')}; failed ${String(failures)}`,
    );
    if (failures > 0) throw new Error(`${String(failures)} of ${String(REQUESTS)} requests to the ${label} failed`);
  }
  console.log('\n$ kipvs inspect');
  process.stdout.write(kipvs(['inspect', '--netns', node]));
  console.log('\n$ kipvs inspect --stats');
  process.stdout.write(kipvs(['inspect', '--stats', '--netns', node]));
  console.log('\n$ kipvs cleanup');
  process.stdout.write(kipvs(['cleanup', '--netns', node]));
}

async function main(): Promise<number> {
  let topology: Topology | undefined;
  try {
    progress('building the cluster: a node, a client and three pod network namespaces');
    topology = createTopology(3);
    await run(topology);
    progress('done');
    return 0;
  } catch (error) {
    // One line: the reason, not the stack. A multi-line message (a tool's stderr) keeps its first line.
    const message = error instanceof Error ? error.message : String(error);
    console.error(`demo failed after ${((Date.now() - started) / 1000).toFixed(1)} s: ${message.trim().split('\n')[0] ?? ''}`);
    return 1;
  } finally {
    topology?.destroy();
  }
}

process.exitCode = await main();
