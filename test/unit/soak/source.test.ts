// The soak's own expectations (scripts/soak/): the real servers it waits for must be what
// translation programs for its source, and its count of /proc/net/ip_vs must count real servers
// only (its header line starts with `  -> ` too).
import { describe, expect, it } from 'vitest';
import { countRealServers } from '../../../scripts/soak/table-watch.js';
import { expectedRealServers, webObjects, workloadWith } from '../../../scripts/soak/source.js';
import { DEFAULT_SETTINGS } from '../../../src/model/settings.js';
import { translate } from '../../../src/translate/translate.js';

function programmedRealServers(count: number, extraFor: ReadonlySet<number>, pods: readonly string[], addresses: readonly string[]): number {
  const workload = workloadWith(count, extraFor);
  const web = webObjects(pods);
  const desired = translate(
    {
      services: [...workload.services, ...(pods.length > 0 ? [web.service] : [])],
      endpointSlices: [...workload.endpointSlices, ...(pods.length > 0 ? [web.slice] : [])],
    },
    { name: 'node-a', addresses, families: ['inet'] },
    DEFAULT_SETTINGS,
  );
  let total = 0;
  for (const virtualServer of desired.virtualServers.values()) total += virtualServer.realServers.size;
  return total;
}

describe('the soak source', () => {
  const pods = ['10.201.0.2', '10.201.1.2', '10.201.2.2'];

  it.each([
    { count: 300, extra: false, pods, addresses: ['10.200.0.1'] },
    { count: 300, extra: true, pods, addresses: ['10.200.0.1'] },
    { count: 301, extra: true, pods, addresses: ['10.200.0.1', '10.201.0.1', '10.201.1.1', '10.201.2.1'] },
    { count: 1000, extra: false, pods: [], addresses: ['192.168.0.10'] },
  ])('expects the real servers translation programs: $count Services, extra $extra, $pods.length pods, $addresses.length node addresses', (c) => {
    const extraFor = new Set(c.extra ? Array.from({ length: c.count }, (_, i) => i) : []);
    expect(expectedRealServers(c.count, { extraFor, pods: c.pods.length, nodePortAddresses: c.addresses.length })).toBe(
      programmedRealServers(c.count, extraFor, c.pods, c.addresses),
    );
  });

  it('counts the real servers of /proc/net/ip_vs, not its header', () => {
    const text = [
      'IP Virtual Server version 1.2.1 (size=4096)',
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port Forward Weight ActiveConn InActConn',
      'TCP  0A64000A:0050 rr',
      '  -> 0AC90002:1F90      Masq    1      0          0',
      '  -> 0AF80001:1F90      Masq    1      0          0',
      'TCP  [FD00:0000:0000:0000:0000:0000:0000:0010]:0050 rr',
      '  -> [FD00:0201:0000:0000:0000:0000:0000:0002]:1F90      Masq    1      0          0',
      '',
    ].join('\n');
    expect(countRealServers(text)).toBe(3);
    expect(countRealServers(text, '0AF8')).toBe(1);
  });
});
