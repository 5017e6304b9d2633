// The C tools' side of the cold-sync comparison, and the kernel counts every measurement is
// checked against. The tools' inputs are written from kipvs's own desired state, so both sides
// program the same objects: `ip -batch` (the dummy interface and its addresses), `ipset restore`,
// `ipvsadm -R`, `iptables-legacy-restore` (kipvs's rules) and `sysctl -w` (kipvs's sysctls).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { formatHostPort } from '../src/ip.js';
import type { DesiredState } from '../src/model/desired.js';
import type { IpsetSetSpec } from '../src/netlink/ipset/types.js';
import { formatEntry } from '../src/netlink/ipset/types.js';
import { isFwmarkKey, type IpvsDestination, type IpvsService, type IpvsServiceKey } from '../src/netlink/ipvs/types.js';
import { IP_VS_SVC_F_PERSISTENT } from '../src/netlink/ipvs/wire.js';

export interface ToolInputs {
  readonly ipBatch: string;
  readonly ipsetRestore: string;
  readonly ipvsadmRestore: string;
  readonly iptablesRestore: string;
  /** `name=value` arguments of one `sysctl -w`. */
  readonly sysctls: readonly string[];
}

function ipvsadmServiceArgs(key: IpvsServiceKey): string {
  if (isFwmarkKey(key)) return `-f ${key.fwmark}`;
  const flag = key.protocol === 'TCP' ? '-t' : key.protocol === 'UDP' ? '-u' : '--sctp-service';
  return `${flag} ${formatHostPort(key.address, key.port)}`;
}

function ipvsadmService(service: IpvsService): string {
  const unsupported = service.flags & ~IP_VS_SVC_F_PERSISTENT;
  if (unsupported !== 0) throw new Error(`bench: ipvsadm input for service flags 0x${service.flags.toString(16)} is not written`);
  const persistence = service.flags & IP_VS_SVC_F_PERSISTENT ? ` -p ${service.timeout} -M ${service.netmask}` : '';
  return `-A ${ipvsadmServiceArgs(service.key)} -s ${service.scheduler}${persistence}`;
}

const FORWARDING_FLAG: Readonly<Record<IpvsDestination['forwarding'], string>> = { masq: '-m', route: '-g', tunnel: '-i', local: '-g', bypass: '-g' };

function ipvsadmDestination(key: IpvsServiceKey, destination: IpvsDestination): string {
  const thresholds = `${destination.upperThreshold ? ` -x ${destination.upperThreshold}` : ''}${destination.lowerThreshold ? ` -y ${destination.lowerThreshold}` : ''}`;
  return `-a ${ipvsadmServiceArgs(key)} -r ${formatHostPort(destination.address, destination.port)} ${FORWARDING_FLAG[destination.forwarding]} -w ${destination.weight}${thresholds}`;
}

function ipsetCreate(name: string, spec: IpsetSetSpec): string {
  const comment = spec.comment ? ' comment' : '';
  if (spec.type === 'bitmap:port') return `create ${name} bitmap:port range ${spec.range.from}-${spec.range.to}${comment}`;
  const sizes = `${spec.hashSize ? ` hashsize ${spec.hashSize}` : ''}${spec.maxElements ? ` maxelem ${spec.maxElements}` : ''}`;
  return `create ${name} ${spec.type} family ${spec.family}${sizes}${comment}`;
}

/** The tools' inputs for the state kipvs would program, dummy interface included. */
export function toolInputs(desired: DesiredState, dummyInterface: string, iptablesRestore: string, sysctls: readonly string[]): ToolInputs {
  const ip = [`link add ${dummyInterface} type dummy`, `link set ${dummyInterface} up`];
  for (const address of desired.boundAddresses) ip.push(`address add ${address}/${address.includes(':') ? 128 : 32} dev ${dummyInterface}`);
  const ipset: string[] = [];
  for (const [name, set] of desired.ipsets) {
    ipset.push(ipsetCreate(name, set.spec));
    for (const entry of set.entries.values()) ipset.push(`add ${name} ${formatEntry(entry)}`);
  }
  const ipvsadm: string[] = [];
  for (const virtualServer of desired.virtualServers.values()) {
    ipvsadm.push(ipvsadmService(virtualServer.service));
    for (const destination of virtualServer.realServers.values()) ipvsadm.push(ipvsadmDestination(virtualServer.service.key, destination));
  }
  const text = (lines: string[]): string => `${lines.join('\n')}\n`;
  return { ipBatch: text(ip), ipsetRestore: text(ipset), ipvsadmRestore: text(ipvsadm), iptablesRestore, sysctls };
}

export interface ToolRun {
  readonly tool: string;
  readonly ms: number;
}

/** Runs `command` in the named network namespace; throws with its stderr when it fails. */
export function inNetns(netns: string, command: string, args: readonly string[], input?: string): { ms: number; stdout: string } {
  const started = performance.now();
  const result = spawnSync('ip', ['netns', 'exec', netns, command, ...args], { input, encoding: 'utf8', maxBuffer: 1 << 30 });
  const ms = performance.now() - started;
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} in ${netns}: exit ${result.status}: ${result.stderr.trim().split('\n').slice(0, 3).join('; ')}`);
  return { ms, stdout: result.stdout };
}

/** Programs the namespace with the C tools, one process each, and returns each one's wall time. */
export function programWithCTools(netns: string, inputs: ToolInputs): ToolRun[] {
  return [
    { tool: 'ip -batch', ms: inNetns(netns, 'ip', ['-batch', '-'], inputs.ipBatch).ms },
    { tool: 'ipset restore', ms: inNetns(netns, 'ipset', ['restore'], inputs.ipsetRestore).ms },
    { tool: 'ipvsadm -R', ms: inNetns(netns, 'ipvsadm', ['-R'], inputs.ipvsadmRestore).ms },
    { tool: 'iptables-legacy-restore', ms: inNetns(netns, 'iptables-legacy-restore', ['--noflush'], inputs.iptablesRestore).ms },
    { tool: 'sysctl -w', ms: inNetns(netns, 'sysctl', ['-q', '-w', ...inputs.sysctls]).ms },
  ];
}

export interface KernelCounts {
  readonly virtualServers: number;
  readonly realServers: number;
  /** Real servers with weight 0 (draining). */
  readonly drainingRealServers: number;
  readonly boundAddresses: number;
  /** Entries by set name. */
  readonly ipsetEntries: ReadonlyMap<string, number>;
  /** `-A` lines in `iptables-legacy-save` (kipvs's rules and jumps; a fresh namespace has no others). */
  readonly iptablesRules: number;
}

export interface KernelState extends KernelCounts {
  /** A hash of every virtual server, real server, set entry and bound address, in sorted order. */
  readonly fingerprint: string;
}

/**
 * What the kernel holds, read with the C tools (an oracle independent of kipvs's netlink code):
 * `ipvsadm -Sn` (the table `ipvsadm -Ln` prints, one line per object), `ipset save`, `ip address`
 * and `iptables-legacy-save`. Two namespaces with the same fingerprint hold the same objects.
 */
export function kernelState(netns: string, dummyInterface: string): KernelState {
  const lines: string[] = [];
  let virtualServers = 0;
  let realServers = 0;
  let drainingRealServers = 0;
  for (const line of inNetns(netns, 'ipvsadm', ['-Sn']).stdout.split('\n')) {
    if (line.startsWith('-A ')) virtualServers++;
    else if (line.startsWith('-a ')) {
      realServers++;
      if (/ -w 0\b/.test(line)) drainingRealServers++;
    } else continue;
    lines.push(line);
  }
  const addressLines = inNetns(netns, 'ip', ['-o', 'address', 'show', 'dev', dummyInterface]).stdout.split('\n');
  const addresses = addressLines.flatMap((line) => /\sinet6? (\S+)/.exec(line)?.[1] ?? []).filter((address) => !address.startsWith('fe80:'));
  lines.push(...addresses.map((address) => `address ${address}`));
  const ipsetEntries = new Map<string, number>();
  for (const line of inNetns(netns, 'ipset', ['save']).stdout.split('\n')) {
    // `create` lines carry a random initval and a hash size that grows with the entries.
    const [verb, name] = line.split(' ', 2);
    if (verb === 'create' && name) ipsetEntries.set(name, 0);
    else if (verb === 'add' && name) {
      ipsetEntries.set(name, (ipsetEntries.get(name) ?? 0) + 1);
      lines.push(line);
    }
  }
  lines.push(...[...ipsetEntries.keys()].map((name) => `set ${name}`));
  const iptablesRules = inNetns(netns, 'iptables-legacy-save', [])
    .stdout.split('\n')
    .filter((line) => line.startsWith('-A ')).length;
  const fingerprint = createHash('sha256').update(lines.sort().join('\n')).digest('hex').slice(0, 16);
  return { virtualServers, realServers, drainingRealServers, boundAddresses: addresses.length, ipsetEntries, iptablesRules, fingerprint };
}

/** The counts the desired state asks for, in KernelCounts' terms. */
export function desiredCounts(desired: DesiredState, iptablesRules: number): KernelCounts {
  let realServers = 0;
  let drainingRealServers = 0;
  for (const virtualServer of desired.virtualServers.values()) {
    realServers += virtualServer.realServers.size;
    for (const destination of virtualServer.realServers.values()) if (destination.weight === 0) drainingRealServers++;
  }
  const ipsetEntries = new Map<string, number>();
  for (const [name, set] of desired.ipsets) ipsetEntries.set(name, set.entries.size);
  return {
    virtualServers: desired.virtualServers.size,
    realServers,
    drainingRealServers,
    boundAddresses: desired.boundAddresses.size,
    ipsetEntries,
    iptablesRules,
  };
}

/** The differences between two counts, as readable lines; empty when they agree. */
export function countDifferences(expected: KernelCounts, actual: KernelCounts): string[] {
  const differences: string[] = [];
  for (const field of ['virtualServers', 'realServers', 'drainingRealServers', 'boundAddresses', 'iptablesRules'] as const) {
    if (expected[field] !== actual[field]) differences.push(`${field}: expected ${expected[field]}, kernel has ${actual[field]}`);
  }
  for (const [name, count] of expected.ipsetEntries) {
    const actualCount = actual.ipsetEntries.get(name);
    if (actualCount !== count) differences.push(`ipset ${name}: expected ${count} entries, kernel has ${actualCount ?? 'no such set'}`);
  }
  for (const name of actual.ipsetEntries.keys()) if (!expected.ipsetEntries.has(name)) differences.push(`ipset ${name}: not expected`);
  return differences;
}
