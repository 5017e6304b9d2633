// kipvs touches only what it owns, and `kipvs cleanup` leaves the kernel as it was before the
// agent started; masquerading is what the flags say, as seen by the backend.
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKipvs as kipvs } from './helpers/agent-process.js';
import { defined } from '../support/defined.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';

const root = join(import.meta.dirname, '..', '..');

describe('what kipvs owns', () => {
  let topology: Topology;
  let sourceDir: string;

  const agentOnce = (...extra: string[]): string =>
    kipvs('agent', '--once', '--source', sourceDir, '--netns', topology.node.name, '--hostname-override', 'node-a', ...extra);
  /** Everything kipvs could touch in the node namespace, as the C tools print it. */
  const kernelState = (): Record<string, string> => ({
    ipvs: topology.node.run('ipvsadm', ['-Sn']),
    ipsets: topology.node.run('ipset', ['save']),
    links: topology.node.run('ip', ['-o', 'link', 'show']).replace(/\s+link\/ether \S+ brd \S+/g, ''),
    // IPv6 duplicate address detection of the test's own veths ends at its own pace.
    addresses: topology.node.run('ip', ['-o', 'addr', 'show']).replace(/ tentative/g, ''),
    nat: topology.node
      .run('iptables-legacy-save', ['-t', 'nat'])
      .replace(/^#.*\n/gm, '')
      .replace(/\[\d+:\d+\]/g, ''),
    filter: topology.node
      .run('iptables-legacy-save', ['-t', 'filter'])
      .replace(/^#.*\n/gm, '')
      .replace(/\[\d+:\d+\]/g, ''),
  });

  const teardown = new Teardown();

  beforeAll(async () => {
    topology = teardown.createTopology(3);
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
    sourceDir = teardown.makeTempDir('kipvs-source-');
    cpSync(join(root, 'examples'), sourceDir, { recursive: true });
    // Someone else's objects: keepalived's virtual server, an admin's ipset and rule.
    topology.node.run('ipvsadm', ['-A', '-t', '192.0.2.10:443', '-s', 'wlc']);
    topology.node.run('ipvsadm', ['-a', '-t', '192.0.2.10:443', '-r', '10.201.0.2:443', '-m']);
    topology.node.run('ipset', ['create', 'ADMIN-ALLOW', 'hash:ip']);
    topology.node.run('ipset', ['add', 'ADMIN-ALLOW', '198.51.100.7']);
    topology.node.run('iptables-legacy', ['-t', 'nat', '-A', 'POSTROUTING', '-s', '10.99.0.0/16', '-j', 'MASQUERADE']);
    topology.node.run('iptables-legacy', ['-A', 'INPUT', '-m', 'set', '--match-set', 'ADMIN-ALLOW', 'src', '-j', 'ACCEPT']);
  });
  afterAll(() => teardown.run());

  it('leaves a foreign virtual server, ipset and rules untouched, and cleanup restores the kernel as it was', () => {
    const before = kernelState();
    agentOnce();
    const programmed = kernelState();
    expect(programmed.ipvs).toContain('-A -t 10.96.0.10:80 -s rr');
    expect(programmed.ipvs).toContain('-A -t 192.0.2.10:443 -s wlc\n-a -t 192.0.2.10:443 -r 10.201.0.2:443 -m -w 1');
    expect(programmed.ipsets).toContain('add ADMIN-ALLOW 198.51.100.7');
    expect(programmed.ipsets).toContain('add KUBE-CLUSTER-IP 10.96.0.10,tcp:80');
    expect(programmed.nat).toContain('-A POSTROUTING -s 10.99.0.0/16 -j MASQUERADE');
    expect(programmed.links).toContain('kube-ipvs0');
    expect(topology.request('10.96.0.10', 80, 3).failures).toBe(0);

    // A Service goes away: only its own objects go with it.
    writeFileSync(join(sourceDir, 'dns.yaml'), '');
    agentOnce();
    const after = kernelState();
    expect(after.ipvs).not.toContain('10.96.0.53');
    expect(after.ipvs).toContain('-A -t 192.0.2.10:443 -s wlc');
    expect(after.ipsets).toContain('add ADMIN-ALLOW 198.51.100.7');

    kipvs('cleanup', '--netns', topology.node.name);
    expect(kernelState()).toEqual(before);
  });

  it('masquerades what the flags say: the backend sees the client without, the node with --masquerade-all', () => {
    cpSync(join(root, 'examples'), sourceDir, { recursive: true });
    agentOnce();
    const seenBy = (): string => {
      const output = topology.client.run(process.execPath, [join(import.meta.dirname, 'helpers', 'tcp-first-line.mjs'), '10.96.0.10', '80']);
      return defined(output.trim().split(' ')[1], `the address in "${output.trim()}"`);
    };
    expect(seenBy()).toMatch(/(::ffff:)?10\.200\.0\.2$/);
    agentOnce('--masquerade-all');
    expect(seenBy()).toMatch(/(::ffff:)?10\.201\.\d\.1$/);
    kipvs('cleanup', '--netns', topology.node.name);
  });
});
