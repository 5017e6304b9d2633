// `kipvs inspect --names` and `--service`: ipvsadm's layout with names after the lines, and one
// Service's share of the table and of the ipsets.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TestApiServer } from '../../support/api-server.js';
import { realServer } from '../../support/ipvs-objects.js';
import { serviceNamesFromApiServer } from '../../../src/cli/inspect-api-names.js';
import { renderInspect, type InspectResult } from '../../../src/cli/inspect.js';
import type { ServiceNames } from '../../../src/agent/service-names.js';
import type { IpvsServiceWithDestinations } from '../../../src/netlink/ipvs/client.js';

const vs = (address: string, port: number, reals: string[]): IpvsServiceWithDestinations => ({
  service: { key: { family: 'inet', protocol: 'TCP', address, port }, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 },
  destinations: reals.map((real) => realServer(real, { activeConns: 0, inactiveConns: 0 })),
});
const result: InspectResult = {
  info: { version: 0x010203, connectionTableSize: 4096 },
  services: [vs('10.96.0.10', 80, ['10.244.1.2']), vs('10.96.0.20', 443, ['10.244.2.2']), vs('192.0.2.1', 30080, ['10.244.1.2'])],
  ipsets: [
    {
      header: { name: 'KUBE-CLUSTER-IP', type: 'hash:ip,port' },
      entries: [
        { ip: '10.96.0.10', protocol: 'tcp', port: 80 },
        { ip: '10.96.0.20', protocol: 'tcp', port: 443 },
      ],
    },
    {
      header: { name: 'KUBE-LOOP-BACK', type: 'hash:ip,port,ip' },
      entries: [
        { ip: '10.244.1.2', protocol: 'tcp', port: 8080, ip2: '10.244.1.2' },
        { ip: '10.244.2.2', protocol: 'tcp', port: 8080, ip2: '10.244.2.2' },
      ],
    },
    { header: { name: 'KUBE-NODE-PORT-TCP', type: 'bitmap:port' }, entries: [{ port: 30080 }, { port: 30443 }] },
  ],
} as unknown as InspectResult;
const names: ServiceNames = {
  virtualServers: new Map([
    ['TCP 10.96.0.10:80', 'shop/web:http'],
    ['TCP 10.96.0.20:443', 'shop/api:https'],
  ]),
  nodePorts: new Map([['TCP 30080', 'shop/web:http']]),
  pods: new Map([
    ['10.244.1.2', 'shop/web-0'],
    ['10.244.2.2', 'shop/api-0'],
  ]),
  source: 'the API server',
  truncated: false,
};

describe('kipvs inspect with names', () => {
  it("without --names is ipvsadm's listing, and with it the same lines each followed by its name", () => {
    const plain = renderInspect({ ...result, ipsets: undefined }, {}).split('\n');
    const named = renderInspect({ ...result, ipsets: undefined, names }, { names: true }).split('\n');
    expect(plain.some((line) => line.includes('shop/'))).toBe(false);
    expect(named.slice(0, plain.length - 1)).toEqual(
      plain.slice(0, -1).map((line) => {
        if (line.startsWith('TCP  10.96.0.10:80') || line.startsWith('TCP  192.0.2.1:30080')) return `${line}  shop/web:http`;
        if (line.startsWith('TCP  10.96.0.20:443')) return `${line}  shop/api:https`;
        if (line.includes('10.244.1.2:8080')) return `${line}  shop/web-0`;
        if (line.includes('10.244.2.2:8080')) return `${line}  shop/api-0`;
        return line;
      }),
    );
    expect(named.at(-2)).toBe('Names from the API server.');
  });

  it("with --service shows only that Service's virtual servers, their pods and its ipset entries", () => {
    const text = renderInspect({ ...result, names }, { service: 'shop/web', stats: true });
    expect(text).not.toContain('10.96.0.20');
    expect(text).toContain('TCP  10.96.0.10:80');
    expect(text).toMatch(/TCP {2}192\.0\.2\.1:30080 .* {2}shop\/web:http\n/);
    expect(text).toContain(
      '\nipset entries:\nadd KUBE-CLUSTER-IP 10.96.0.10,tcp:80\nadd KUBE-LOOP-BACK 10.244.1.2,tcp:8080,10.244.1.2\nadd KUBE-NODE-PORT-TCP 30080\n',
    );
  });
});

describe('names from the API server (--kubeconfig)', () => {
  it('lists Services and EndpointSlices once and names virtual servers, NodePorts and pods, saying where from', async () => {
    const server = await TestApiServer.start();
    const dir = mkdtempSync(join(tmpdir(), 'kipvs-names-'));
    try {
      server.create('services', {
        metadata: { name: 'web', namespace: 'shop' },
        spec: {
          type: 'NodePort',
          clusterIP: '10.96.0.10',
          clusterIPs: ['10.96.0.10'],
          ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }],
        },
      });
      server.create('endpointslices', {
        metadata: { name: 'web-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['10.244.1.2'], targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop' } }],
      });
      const kubeconfig = server.writeKubeconfig(dir);
      const found = await serviceNamesFromApiServer(kubeconfig);
      expect([...found.virtualServers]).toEqual([['TCP 10.96.0.10:80', 'shop/web:http']]);
      expect([...found.nodePorts]).toEqual([['TCP 30080', 'shop/web:http']]);
      expect([...found.pods]).toEqual([['10.244.1.2', 'shop/web-0']]);
      expect(found.source).toMatch(new RegExp(`^the API server https?://\\S+ \\(--kubeconfig ${kubeconfig.replaceAll('.', '\\.')}\\)$`));
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
