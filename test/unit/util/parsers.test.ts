// One parser per idea: the flags, the configuration file and the Service translation agree.
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../../src/ip.js';
import { parseCidrs, parseDuration, parseScheduler } from '../../../src/cli/agent-options.js';
import { parseKubeProxyConfiguration } from '../../../src/cli/kube-proxy-config.js';
import { parseHostPort } from '../../../src/util/host-port.js';
import { parseBindAddress } from '../../../src/agent/health-server.js';
import { IPVS_SCHEDULERS } from '../../../src/model/schedulers.js';
import { schedulerOf } from '../../../src/translate/annotations.js';

const HEADER = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n';
const configProblems = (body: string): readonly string[] => {
  try {
    parseKubeProxyConfiguration(HEADER + body, 'test');
    return [];
  } catch (error) {
    return (error as { problems: readonly string[] }).problems;
  }
};

describe('one duration parser for flags and the configuration file', () => {
  it('refuses a bare 30 in both places, as time.ParseDuration does for kube-proxy', () => {
    expect(() => parseDuration('30')).toThrow(/is not a duration/);
    expect(configProblems('ipvs:\n  syncPeriod: "30"\n')).toEqual(['ipvs.syncPeriod: "30" is not a duration (like 30s, 1m0s, 500ms)']);
  });

  it('takes the same Go durations in both places', () => {
    for (const [text, ms] of [
      ['30s', 30_000],
      ['1m0s', 60_000],
      ['0', 0],
      ['1.5s', 1_500],
      ['2h22m', 8_520_000],
    ] as const) {
      expect(parseDuration(text)).toBe(ms);
    }
  });
});

describe('one CIDR parser', () => {
  it('refuses a bare IP as a flag, in the configuration file and in a Service, as ParseCIDRSloppy does', () => {
    expect(parseCidr('10.0.0.1')).toBeUndefined();
    expect(() => parseCidrs('10.0.0.1')).toThrow(/is not a CIDR/);
    expect(configProblems('clusterCIDR: 10.0.0.1\n')).toEqual(['clusterCIDR[0]: "10.0.0.1" must be a CIDR (like 10.0.0.0/8)']);
  });

  it('takes a CIDR in all three and clears its host bits for the model', () => {
    expect(parseCidrs('10.244.0.0/16, fd00::/64')).toEqual(['10.244.0.0/16', 'fd00::/64']);
    expect(configProblems('clusterCIDR: 10.244.0.0/16\n')).toEqual([]);
    expect(parseCidr('10.1.2.3/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'inet' });
  });
});

describe('one host:port parser', () => {
  it('completes a bare IP with the default port and refuses names, for the servers and the configuration file', () => {
    expect(parseHostPort('10.1.2.3', 10256)).toEqual({ host: '10.1.2.3', port: 10256 });
    expect(parseHostPort('[::1]:9000', 1)).toEqual({ host: '::1', port: 9000 });
    expect(parseHostPort('localhost:10256', 1)).toEqual({ error: '"localhost" must be a valid IP' });
    expect(() => parseBindAddress('localhost:10256', 1)).toThrow(/must be a valid IP/);
    expect(configProblems('healthzBindAddress: localhost:10256\n')).toEqual(['healthzBindAddress: "localhost" must be a valid IP']);
  });
});

describe('one scheduler list', () => {
  it('is what the flag, the configuration file and the annotation accept', () => {
    for (const name of IPVS_SCHEDULERS) {
      expect(parseScheduler(name)).toBe(name);
      expect(configProblems(`ipvs:\n  scheduler: ${name}\n`)).toEqual([]);
      expect(schedulerOf({ 'kipvs.io/scheduler': name }, 'rr', () => undefined)).toBe(name);
    }
    expect(() => parseScheduler('twos2')).toThrow(/unknown IPVS scheduler/);
  });
});
