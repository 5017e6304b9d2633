// Before any measurement: each program run once, and this boot's speed measured.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { inNetns } from '../c-tools.js';
import { NODE_NAME } from '../workload.js';
import { freshNamespace, retireNamespace } from './namespaces.js';
import { ms } from './report.js';
import { CLI, root } from './shared.js';

/**
 * Each program's first run in a boot reads its files over hostfs; the first measurement would pay
 * for that alone. One run of each, on examples/ in a namespace of its own, before any measurement.
 * Returns how fast this boot is, for the report.
 */
export async function warmUp(): Promise<string> {
  const netns = freshNamespace();
  const agent = spawnSync(process.execPath, [CLI, 'agent', '--once', '--source', join(root, 'examples'), '--netns', netns, '--hostname-override', NODE_NAME], {
    encoding: 'utf8',
  });
  if (agent.status !== 0) throw new Error(`kipvs agent --once on examples/ exited ${agent.status}: ${agent.stderr}`);
  inNetns(netns, 'ipvsadm', ['-Sn']);
  inNetns(netns, 'ipset', ['save']);
  inNetns(netns, 'ip', ['-batch', '-'], 'link show\n');
  inNetns(netns, 'iptables-legacy-save', []);
  inNetns(netns, 'sysctl', ['-n', 'net.ipv4.ip_forward']);
  // How fast this boot is: UML's speed varies several-fold between boots on the same machine.
  const lines = Array.from({ length: 100 }, (_, i) => [
    `-A -t 10.96.1.${i + 1}:80 -s rr`,
    ...Array.from({ length: 10 }, (_, j) => `-a -t 10.96.1.${i + 1}:80 -r 10.${128 + j}.1.${i + 1}:8080 -m -w 1`),
  ]).flat();
  const restore = inNetns(netns, 'ipvsadm', ['-R'], `${lines.join('\n')}\n`);
  const started = performance.now();
  spawnSync(process.execPath, ['-e', '0']);
  const calibration = `this boot: ipvsadm -R ${((restore.ms * 1000) / lines.length).toFixed(0)} µs per line (${lines.length} lines), \`node -e 0\` ${ms(performance.now() - started)}`;
  await retireNamespace(netns);
  return calibration;
}
