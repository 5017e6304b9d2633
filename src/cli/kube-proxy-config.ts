// kube-proxy's configuration file (`--config`, kind KubeProxyConfiguration,
// kubeproxy.config.k8s.io/v1alpha1), read so that a node's existing file — the kube-proxy
// ConfigMap's config.conf that kubeadm writes — works unchanged. Field names and types are
// staging/src/k8s.io/kube-proxy/config/v1alpha1/types.go; how they apply in ipvs mode is
// pkg/proxy/apis/config/v1alpha1/conversion.go (sync periods from ipvs.*, masqueradeAll from
// iptables.* — the internal `linux.masqueradeAll` is not a v1alpha1 field) and defaults.go; the
// checks are pkg/proxy/apis/config/validation/validation.go. Every field is either:
// - acted on: mapped onto an agent option, with kube-proxy's checks (CONFIG_ACTED);
// - warned: accepted, and one warning per reason names the fields whose value kube-proxy would act
//   on (or that do not apply in ipvs mode: iptables.syncPeriod, nftables.*, winkernel.*, ...) and
//   says why kipvs does not (IGNORED). Defaults and zeros are not worth a warning.
// Only values kube-proxy refuses are refused, and mode: another proxy mode than ipvs.
// Unknown fields are refused with the nearest known name. kube-proxy decodes strictly first and,
// for v1alpha1 only, falls back to lenient decoding that merely logs the unknown field; kipvs stops
// there, because a misspelt field silently keeps its default, and an unchanged file must mean the
// same thing here as it did to kube-proxy. Fields kube-proxy has since removed are only warned about.
import { readFileSync } from 'node:fs';
import { parseDocument, stringify } from 'yaml';
import { isDetectLocalMode, type DetectLocalMode } from './agent-options.js';
import { familyOf, parseCidr } from '../ip.js';
import { IPVS_SCHEDULERS, isIpvsScheduler } from '../model/schedulers.js';
import { parseGoDuration } from '../util/duration.js';
import { formatBindAddress, parseHostPort } from '../util/host-port.js';
import { KipvsError } from '../errors.js';

/** What a configuration file sets, named as AgentOptions (durations in ms); absent when the file leaves the default. */
export interface KubeProxyConfigOptions {
  scheduler?: string;
  kubeconfig?: string;
  hostnameOverride?: string;
  clusterCidr?: string[];
  masqueradeAll?: boolean;
  nodeportAddresses?: string[];
  ipvsSyncPeriod?: number;
  ipvsMinSyncPeriod?: number;
  ipvsStrictArp?: boolean;
  ipvsExcludeCidrs?: string[];
  ipvsTcpTimeout?: number;
  ipvsTcpfinTimeout?: number;
  ipvsUdpTimeout?: number;
  healthzBindAddress?: string;
  metricsBindAddress?: string;
  /** iptables.masqueradeBit (kube-proxy's --iptables-masquerade-bit): the mark is 2 ** bit. */
  iptablesMasqueradeBit?: number;
  bindAddress?: string;
  detectLocalMode?: DetectLocalMode;
  podBridgeInterface?: string;
  podInterfaceNamePrefix?: string;
  conntrackMaxPerCore?: number;
  conntrackMin?: number;
  conntrackTcpTimeoutEstablished?: number;
  conntrackTcpTimeoutCloseWait?: number;
  conntrackTcpBeLiberal?: boolean;
  conntrackUdpTimeout?: number;
  conntrackUdpTimeoutStream?: number;
  /** logging.verbosity: the log level, as -v. */
  v?: number;
  loggingFormat?: string;
}

export interface KubeProxyConfigResult {
  readonly options: KubeProxyConfigOptions;
  /** One line per reason: `ignored: conntrack.maxPerCore, conntrack.min (kipvs does not ...)`. */
  readonly warnings: string[];
}

/** Every problem in the file at once; `problems` holds one line each, `message` all of them. */
export class KubeProxyConfigError extends KipvsError {
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super('KIPVS_CONFIG', `${source}: invalid KubeProxyConfiguration: ${problems.join('; ')}`);
  }
}

export const KUBE_PROXY_API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';
const KIND = 'KubeProxyConfiguration';

// ---- the v1alpha1 schema ----

type Leaf = 'string' | 'bool' | 'int32' | 'uint32' | 'float' | 'duration' | 'nanosOrDuration' | 'strings' | 'boolMap' | 'quantity' | 'vmodule';
interface Struct {
  readonly [field: string]: Leaf | Struct;
}

const LOG_FORMAT_OPTIONS: Struct = { splitStream: 'bool', infoBufferSize: 'quantity' };
const SCHEMA: Struct = {
  apiVersion: 'string',
  kind: 'string',
  featureGates: 'boolMap',
  clientConnection: { kubeconfig: 'string', acceptContentTypes: 'string', contentType: 'string', qps: 'float', burst: 'int32' },
  logging: {
    format: 'string',
    flushFrequency: 'nanosOrDuration',
    verbosity: 'uint32',
    vmodule: 'vmodule',
    options: { json: LOG_FORMAT_OPTIONS, text: LOG_FORMAT_OPTIONS },
  },
  hostnameOverride: 'string',
  bindAddress: 'string',
  healthzBindAddress: 'string',
  metricsBindAddress: 'string',
  bindAddressHardFail: 'bool',
  enableProfiling: 'bool',
  showHiddenMetricsForVersion: 'string',
  mode: 'string',
  ipvs: {
    syncPeriod: 'duration',
    minSyncPeriod: 'duration',
    scheduler: 'string',
    excludeCIDRs: 'strings',
    strictARP: 'bool',
    tcpTimeout: 'duration',
    tcpFinTimeout: 'duration',
    udpTimeout: 'duration',
  },
  iptables: {
    masqueradeBit: 'int32',
    masqueradeAll: 'bool',
    localhostNodePorts: 'bool',
    snatNodeInternalIP: 'bool',
    syncPeriod: 'duration',
    minSyncPeriod: 'duration',
  },
  nftables: { masqueradeBit: 'int32', masqueradeAll: 'bool', syncPeriod: 'duration', minSyncPeriod: 'duration' },
  winkernel: { networkName: 'string', sourceVip: 'string', enableDSR: 'bool', rootHnsEndpointName: 'string', forwardHealthCheckVip: 'bool' },
  detectLocalMode: 'string',
  detectLocal: { bridgeInterface: 'string', interfaceNamePrefix: 'string' },
  clusterCIDR: 'string',
  nodePortAddresses: 'strings',
  oomScoreAdj: 'int32',
  conntrack: {
    maxPerCore: 'int32',
    min: 'int32',
    tcpEstablishedTimeout: 'duration',
    tcpCloseWaitTimeout: 'duration',
    tcpBeLiberal: 'bool',
    udpTimeout: 'duration',
    udpStreamTimeout: 'duration',
  },
  configSyncPeriod: 'duration',
  portRange: 'string',
  windowsRunAsService: 'bool',
};

/** Fields older kubeadm and kube-proxy versions wrote that current kube-proxy no longer has. */
const REMOVED: Record<string, string> = {
  udpIdleTimeout: 'removed from kube-proxy with the userspace mode',
  resourceContainer: 'removed from kube-proxy in 1.16',
  'conntrack.max': 'removed from kube-proxy; conntrack.maxPerCore replaced it',
};

function knownPaths(struct: Struct, prefix = ''): string[] {
  return Object.entries(struct).flatMap(([name, spec]) => {
    const path = prefix + name;
    return typeof spec === 'string' ? [path] : [path, ...knownPaths(spec, `${path}.`)];
  });
}
function leafPaths(struct: Struct, prefix = ''): string[] {
  return Object.entries(struct).flatMap(([name, spec]) => (typeof spec === 'string' ? [prefix + name] : leafPaths(spec, `${prefix}${name}.`)));
}
const LEAVES = new Set(leafPaths(SCHEMA));
// Preferred first when a misplaced name matches several: the sections ipvs mode reads.
const KNOWN_PATHS = knownPaths(SCHEMA).sort((a, b) => rank(a) - rank(b));
function rank(path: string): number {
  return path.startsWith('ipvs.') ? 0 : path.startsWith('iptables.') ? 1 : 2;
}

// ---- decoding: shape and types, as Go's strict JSON decoding would check them ----

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function nearest(name: string, candidates: readonly string[], leafOf: (candidate: string) => string = (c) => c): string | undefined {
  const limit = name.length <= 4 ? 1 : name.length <= 8 ? 2 : 3;
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), leafOf(candidate).toLowerCase());
    if (distance <= limit && (!best || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

const isMapping = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const describe = (value: unknown): string =>
  value === null ? 'null' : Array.isArray(value) ? 'a list' : isMapping(value) ? 'a mapping' : `${typeof value} ${JSON.stringify(value)}`;

interface Decoded {
  /** Leaf values by dotted path, as they were in the file (durations in ms); absent fields are missing. */
  readonly values: Map<string, unknown>;
  readonly problems: string[];
  readonly removed: string[];
}

function unknownField(path: string, name: string, value: unknown, siblings: readonly string[], decoded: Decoded): void {
  const parent = path.slice(0, path.length - name.length);
  const sibling = nearest(name, siblings);
  const elsewhere = sibling === undefined ? nearest(name, KNOWN_PATHS, (known) => known.slice(known.lastIndexOf('.') + 1)) : undefined;
  const suggestion = sibling !== undefined ? parent + sibling : elsewhere;
  if (suggestion === undefined && isMapping(value)) {
    // A section of another layout (the internal `linux:`): say where each of its fields lives.
    for (const [child, childValue] of Object.entries(value)) unknownField(`${path}.${child}`, child, childValue, [], decoded);
    return;
  }
  decoded.problems.push(`unknown field ${path}${suggestion ? ` (did you mean ${suggestion}?)` : ''}`);
}

function decodeLeaf(kind: Leaf, value: unknown): { value: unknown } | { error: string } {
  const ok = (v: unknown): { value: unknown } => ({ value: v });
  const fail = (expected: string): { error: string } => ({ error: `must be ${expected}, not ${describe(value)}` });
  if (value === null) return ok(null);
  switch (kind) {
    case 'string':
      return typeof value === 'string' ? ok(value) : fail('a string');
    case 'bool':
      return typeof value === 'boolean' ? ok(value) : fail('true or false');
    case 'int32':
      return Number.isInteger(value) && (value as number) >= -(2 ** 31) && (value as number) < 2 ** 31 ? ok(value) : fail('a 32-bit integer');
    case 'uint32':
      return Number.isInteger(value) && (value as number) >= 0 && (value as number) < 2 ** 32 ? ok(value) : fail('a non-negative integer');
    case 'float':
      return typeof value === 'number' ? ok(value) : fail('a number');
    case 'quantity':
      return typeof value === 'number' || typeof value === 'string' ? ok(value) : fail('a quantity');
    case 'duration':
    case 'nanosOrDuration':
      if (kind === 'nanosOrDuration' && Number.isInteger(value)) return ok((value as number) / 1e6);
      if (typeof value !== 'string') return fail('a duration string like "30s"');
      try {
        return ok(parseGoDuration(value));
      } catch (error) {
        return { error: (error as Error).message };
      }
    case 'strings':
      return Array.isArray(value) && value.every((item) => typeof item === 'string') ? ok(value) : fail('a list of strings');
    case 'boolMap':
      return isMapping(value) && Object.values(value).every((v) => typeof v === 'boolean') ? ok(value) : fail('a mapping of names to true or false');
    case 'vmodule':
      return Array.isArray(value) && value.every((item) => isMapping(item) && Object.keys(item).every((k) => k === 'filePattern' || k === 'verbosity'))
        ? ok(value)
        : fail('a list of {filePattern, verbosity}');
  }
}

function decodeStruct(node: unknown, schema: Struct, prefix: string, decoded: Decoded): void {
  if (node === null || node === undefined) return;
  if (!isMapping(node)) {
    decoded.problems.push(`${prefix ? prefix.slice(0, -1) : 'the document'}: must be a mapping, not ${describe(node)}`);
    return;
  }
  for (const [name, value] of Object.entries(node)) {
    const path = prefix + name;
    const spec = Object.hasOwn(schema, name) ? schema[name] : undefined;
    if (spec === undefined) {
      if (Object.hasOwn(REMOVED, path)) decoded.removed.push(path);
      else unknownField(path, name, value, Object.keys(schema), decoded);
    } else if (typeof spec !== 'string') {
      decodeStruct(value, spec, `${path}.`, decoded);
    } else {
      const result = decodeLeaf(spec, value);
      if ('error' in result) decoded.problems.push(`${path}: ${result.error}`);
      else decoded.values.set(path, result.value);
    }
  }
}

// ---- values ----

const isCidr = (text: string): boolean => parseCidr(text) !== undefined;

/** host:port as kube-proxy's validation takes it, after AppendPortIfNeeded for a bare IP. */
function hostPort(text: string, defaultPort: number): { value: string } | { error: string } {
  const parsed = parseHostPort(text, defaultPort, 1);
  if ('error' in parsed) return parsed;
  return { value: formatBindAddress(parsed) };
}

// ---- what each field means to kipvs ----

type Get = (path: string) => unknown;
const isZero = (value: unknown): boolean =>
  value === undefined ||
  value === null ||
  value === '' ||
  value === false ||
  value === 0 ||
  (Array.isArray(value) && value.length === 0) ||
  (isMapping(value) && Object.keys(value).length === 0);

interface Ignored {
  readonly paths: readonly string[];
  readonly reason: string;
  /** Whether kube-proxy would act on this value (null often means "its default", which it applies). */
  readonly acts: (value: unknown, get: Get, path: string) => boolean;
}

const nonDefault =
  (defaults: readonly unknown[]) =>
  (value: unknown): boolean =>
    !isZero(value) && !defaults.includes(value);
const NOT_IPVS = 'kube-proxy reads it only in another proxy mode or on Windows; in ipvs mode it does not apply';
const IGNORED: readonly Ignored[] = [
  {
    paths: ['oomScoreAdj'],
    reason: 'kipvs does not change its OOM score (kube-proxy sets -999 when null); the kubelet sets it from the pod QoS class',
    acts: () => true,
  },
  { paths: ['featureGates'], reason: 'kipvs has no feature gates', acts: (value) => !isZero(value) },
  {
    paths: ['clientConnection.qps', 'clientConnection.burst', 'clientConnection.contentType', 'clientConnection.acceptContentTypes'],
    reason: "kipvs's Kubernetes client has no client-side rate limit and speaks JSON",
    acts: nonDefault([5, 10, 'application/vnd.kubernetes.protobuf']),
  },
  { paths: ['configSyncPeriod'], reason: 'kipvs has no informer resync period', acts: nonDefault([15 * 60_000]) },
  {
    paths: [
      'logging.vmodule',
      'logging.flushFrequency',
      'logging.options.json.splitStream',
      'logging.options.json.infoBufferSize',
      'logging.options.text.splitStream',
      'logging.options.text.infoBufferSize',
    ],
    reason: 'kipvs writes JSON lines to stderr, unbuffered, at one level for all its code',
    acts: (value) => !isZero(value) && value !== '0' && value !== 5000,
  },
  {
    paths: ['bindAddressHardFail'],
    reason: 'kipvs keeps retrying a health or metrics port that is taken, every 5 s, and keeps proxying',
    acts: (value) => value === true,
  },
  { paths: ['enableProfiling', 'showHiddenMetricsForVersion'], reason: 'kipvs serves no /debug/pprof and hides no metrics', acts: (value) => !isZero(value) },
  {
    paths: ['iptables.snatNodeInternalIP'],
    reason: "not a field of kube-proxy 1.34's v1alpha1, whose lenient decoding ignores it; kipvs masquerades to the egress interface's address",
    acts: (value) => value === true,
  },
  {
    paths: ['nftables.masqueradeAll'],
    reason: 'kube-proxy reads it only in nftables mode; in ipvs mode the field is iptables.masqueradeAll',
    acts: (value) => value === true,
  },
  {
    paths: [
      'iptables.syncPeriod',
      'iptables.minSyncPeriod',
      'iptables.localhostNodePorts',
      'nftables.masqueradeBit',
      'nftables.syncPeriod',
      'nftables.minSyncPeriod',
      'winkernel.networkName',
      'winkernel.sourceVip',
      'winkernel.enableDSR',
      'winkernel.rootHnsEndpointName',
      'winkernel.forwardHealthCheckVip',
      'portRange',
      'windowsRunAsService',
    ],
    reason: NOT_IPVS,
    // kube-proxy's defaults (30s, 1s, true, 14) say nothing either.
    acts: nonDefault([30_000, 1_000, true, 14]),
  },
];

/** The fields kipvs acts on, and what they drive (docs/configuration.md lists them). */
export const CONFIG_ACTED: Readonly<Record<string, string>> = {
  apiVersion: 'must be kubeproxy.config.k8s.io/v1alpha1',
  kind: 'must be KubeProxyConfiguration',
  mode: 'must be ipvs',
  'clientConnection.kubeconfig': '--kubeconfig',
  'logging.format': 'json; text is warned (kipvs always logs JSON lines)',
  'logging.verbosity': 'the log level, as -v',
  hostnameOverride: '--hostname-override',
  bindAddress: '--bind-address',
  healthzBindAddress: '--healthz-bind-address',
  metricsBindAddress: '--metrics-bind-address',
  'ipvs.syncPeriod': '--ipvs-sync-period',
  'ipvs.minSyncPeriod': '--ipvs-min-sync-period',
  'ipvs.scheduler': '--ipvs-scheduler',
  'ipvs.excludeCIDRs': '--ipvs-exclude-cidrs',
  'ipvs.strictARP': '--ipvs-strict-arp',
  'ipvs.tcpTimeout': '--ipvs-tcp-timeout',
  'ipvs.tcpFinTimeout': '--ipvs-tcpfin-timeout',
  'ipvs.udpTimeout': '--ipvs-udp-timeout',
  'iptables.masqueradeBit': '--iptables-masquerade-bit',
  'iptables.masqueradeAll': '--masquerade-all',
  detectLocalMode: '--detect-local-mode',
  'detectLocal.bridgeInterface': '--pod-bridge-interface',
  'detectLocal.interfaceNamePrefix': '--pod-interface-name-prefix',
  clusterCIDR: '--cluster-cidr',
  nodePortAddresses: '--nodeport-addresses (CIDRs, primary, all, localhost)',
  'conntrack.maxPerCore': '--conntrack-max-per-core',
  'conntrack.min': '--conntrack-min',
  'conntrack.tcpEstablishedTimeout': '--conntrack-tcp-timeout-established',
  'conntrack.tcpCloseWaitTimeout': '--conntrack-tcp-timeout-close-wait',
  'conntrack.tcpBeLiberal': '--conntrack-tcp-be-liberal',
  'conntrack.udpTimeout': '--conntrack-udp-timeout',
  'conntrack.udpStreamTimeout': '--conntrack-udp-timeout-stream',
};

/** Every leaf field of the schema with what kipvs does with it: acted, or warned and why. */
export function configFieldTable(): { path: string; status: 'acted' | 'warned'; note: string }[] {
  return knownPaths(SCHEMA)
    .filter((path) => LEAVES.has(path))
    .map((path) => {
      const acted = CONFIG_ACTED[path];
      if (acted !== undefined) return { path, status: 'acted' as const, note: acted };
      const ignored = IGNORED.find((entry) => entry.paths.includes(path));
      return { path, status: 'warned' as const, note: ignored?.reason ?? 'NO ENTRY' };
    });
}

function modeProblem(mode: string): string | undefined {
  if (mode === 'ipvs') return undefined;
  const cleanup =
    "kipvs implements only kube-proxy's ipvs mode and does not remove another mode's rules: run kube-proxy --cleanup on the node, then set mode: ipvs";
  if (mode === '') return `mode: "" means iptables to kube-proxy on Linux; ${cleanup}`;
  if (mode === 'iptables' || mode === 'nftables') return `mode: "${mode}" is kube-proxy's ${mode} mode; ${cleanup}`;
  return `mode: unknown proxy mode "${mode}" (kipvs implements ipvs)`;
}

function cidrList(path: string, list: readonly string[], problems: string[]): string[] {
  list.forEach((cidr, i) => {
    if (!isCidr(cidr)) problems.push(`${path}[${i}]: "${cidr}" must be a CIDR (like 10.0.0.0/8)`);
  });
  return [...list];
}

function nodePortAddresses(list: readonly string[], problems: string[], warnings: string[]): string[] {
  const cidrs: string[] = [];
  list.forEach((entry, i) => {
    const path = `nodePortAddresses[${i}]`;
    // kube-proxy's validation: "primary" only alone; it means the Node object's primary IPs.
    if (entry === 'primary') {
      if (list.length !== 1) problems.push(`${path}: "primary" cannot be combined with other entries`);
      else cidrs.push('primary');
    } else if (entry === 'all') cidrs.push('0.0.0.0/0', '::/0');
    else if (entry === 'localhost') {
      cidrs.push('127.0.0.0/8', '::1/128');
      warnings.push(`${path}: "localhost" selects no address: like kube-proxy's ipvs mode, kipvs never serves NodePorts on loopback`);
    } else if (isCidr(entry)) cidrs.push(entry);
    else problems.push(`${path}: "${entry}" must be a CIDR, "primary", "localhost" or "all"`);
  });
  return cidrs;
}

/** detectLocalMode and detectLocal.*: kube-proxy's validateDetectLocalConfiguration; "" is ClusterCIDR. */
function detectLocal(text: (path: string) => string, options: KubeProxyConfigOptions, problems: string[]): void {
  const mode = text('detectLocalMode');
  if (mode === '') return;
  if (!isDetectLocalMode(mode)) {
    problems.push(`detectLocalMode: unknown mode "${mode}" (ClusterCIDR, NodeCIDR, BridgeInterface or InterfaceNamePrefix)`);
    return;
  }
  options.detectLocalMode = mode;
  const bridge = text('detectLocal.bridgeInterface');
  const prefix = text('detectLocal.interfaceNamePrefix');
  if (mode === 'BridgeInterface' && bridge === '') problems.push('detectLocal.bridgeInterface: must not be empty with detectLocalMode BridgeInterface');
  if (mode === 'InterfaceNamePrefix' && prefix === '')
    problems.push('detectLocal.interfaceNamePrefix: must not be empty with detectLocalMode InterfaceNamePrefix');
  if (bridge !== '') options.podBridgeInterface = bridge;
  if (prefix !== '') options.podInterfaceNamePrefix = prefix;
}

/** conntrack.*: null keeps kube-proxy's default, which is also the flags' default. */
function conntrack(get: Get, options: KubeProxyConfigOptions): void {
  const fields = [
    ['conntrack.maxPerCore', 'conntrackMaxPerCore'],
    ['conntrack.min', 'conntrackMin'],
    ['conntrack.tcpEstablishedTimeout', 'conntrackTcpTimeoutEstablished'],
    ['conntrack.tcpCloseWaitTimeout', 'conntrackTcpTimeoutCloseWait'],
    ['conntrack.udpTimeout', 'conntrackUdpTimeout'],
    ['conntrack.udpStreamTimeout', 'conntrackUdpTimeoutStream'],
  ] as const;
  for (const [path, option] of fields) {
    const value = get(path);
    if (typeof value === 'number' && value >= 0) options[option] = value;
  }
  if (typeof get('conntrack.tcpBeLiberal') === 'boolean') options.conntrackTcpBeLiberal = get('conntrack.tcpBeLiberal') === true;
}

function interpret(get: Get, present: (path: string) => boolean, problems: string[], warnings: string[]): KubeProxyConfigOptions {
  const options: KubeProxyConfigOptions = {};
  const text = (path: string): string => (get(path) as string | null | undefined) ?? '';
  if (!present('apiVersion')) problems.push(`apiVersion: missing (want ${KUBE_PROXY_API_VERSION})`);
  else if (text('apiVersion') !== KUBE_PROXY_API_VERSION)
    problems.push(`apiVersion: "${text('apiVersion')}" is not ${KUBE_PROXY_API_VERSION}, the only version kube-proxy reads`);
  if (text('kind') !== KIND) problems.push(`kind: ${present('kind') ? `"${text('kind')}" is not ${KIND}` : `missing (want ${KIND})`}`);
  const modeError = modeProblem(text('mode'));
  if (modeError) problems.push(modeError);

  if (text('clientConnection.kubeconfig')) options.kubeconfig = text('clientConnection.kubeconfig');
  if (text('hostnameOverride').trim()) options.hostnameOverride = text('hostnameOverride').trim().toLowerCase();

  // Defaults as kube-proxy's getDefaultAddresses: an IPv6 bindAddress moves both servers to IPv6.
  const bindAddress = text('bindAddress');
  if (bindAddress && !familyOf(bindAddress)) problems.push(`bindAddress: "${bindAddress}" must be an IP address`);
  else if (bindAddress) options.bindAddress = bindAddress;
  const ipv6 = familyOf(bindAddress) === 'inet6';
  for (const [path, any, port] of [
    ['healthzBindAddress', ipv6 ? '[::]' : '0.0.0.0', 10256],
    ['metricsBindAddress', ipv6 ? '[::1]' : '127.0.0.1', 10249],
  ] as const) {
    const result = text(path) ? hostPort(text(path), port) : { value: `${any}:${port}` };
    if ('error' in result) problems.push(`${path}: ${result.error}`);
    else options[path] = result.value;
  }

  const clusterCidr = text('clusterCIDR');
  if (clusterCidr) {
    const cidrs = cidrList(
      'clusterCIDR',
      clusterCidr.split(',').map((cidr) => cidr.trim()),
      problems,
    );
    const families = new Set(cidrs.map((cidr) => parseCidr(cidr)?.family));
    if (cidrs.length > 2 || (cidrs.length === 2 && families.size !== 2))
      problems.push(`clusterCIDR: "${clusterCidr}" must be one CIDR or a dual-stack pair (one IPv4, one IPv6)`);
    options.clusterCidr = cidrs;
  }
  detectLocal(text, options, problems);
  if (get('nodePortAddresses')) options.nodeportAddresses = nodePortAddresses(get('nodePortAddresses') as string[], problems, warnings);

  if (present('iptables.masqueradeAll')) options.masqueradeAll = get('iptables.masqueradeAll') === true;
  const masqueradeBit = get('iptables.masqueradeBit');
  if (typeof masqueradeBit === 'number') {
    if (masqueradeBit < 0 || masqueradeBit > 31) problems.push(`iptables.masqueradeBit: ${masqueradeBit} must be within [0, 31]`);
    else options.iptablesMasqueradeBit = masqueradeBit;
  }
  conntrack(get, options);
  const verbosity = get('logging.verbosity');
  if (typeof verbosity === 'number') options.v = verbosity;
  const format = text('logging.format');
  if (format !== '' && format !== 'json' && format !== 'text') problems.push(`logging.format: "${format}" is not a log format (json or text)`);
  else if (format === 'text') warnings.push('ignored: logging.format text (kipvs always logs JSON lines)');
  if (format !== '') options.loggingFormat = format;

  // ipvs: kube-proxy defaults a zero syncPeriod to 30s; minSyncPeriod 0 means sync on every change.
  const ms = (path: string): number | undefined => (typeof get(path) === 'number' ? (get(path) as number) : undefined);
  const syncPeriod = ms('ipvs.syncPeriod') || undefined;
  const minSyncPeriod = ms('ipvs.minSyncPeriod');
  if (syncPeriod !== undefined && syncPeriod < 0) problems.push(`ipvs.syncPeriod: must be greater than 0`);
  else if (syncPeriod !== undefined) options.ipvsSyncPeriod = syncPeriod;
  if (minSyncPeriod !== undefined && minSyncPeriod < 0) problems.push(`ipvs.minSyncPeriod: must be 0 or more`);
  else if (minSyncPeriod !== undefined) options.ipvsMinSyncPeriod = minSyncPeriod;
  if (minSyncPeriod !== undefined && minSyncPeriod > (syncPeriod ?? 30_000)) {
    problems.push(`ipvs.minSyncPeriod: ${minSyncPeriod / 1000}s must not exceed ipvs.syncPeriod (${(syncPeriod ?? 30_000) / 1000}s)`);
  }
  const scheduler = text('ipvs.scheduler');
  if (scheduler && !isIpvsScheduler(scheduler)) {
    const guess = nearest(scheduler, IPVS_SCHEDULERS);
    problems.push(`ipvs.scheduler: unknown IPVS scheduler "${scheduler}"${guess ? ` (did you mean ${guess}?)` : ''}; one of ${IPVS_SCHEDULERS.join(', ')}`);
  } else if (scheduler) options.scheduler = scheduler;
  if (get('ipvs.excludeCIDRs')) options.ipvsExcludeCidrs = cidrList('ipvs.excludeCIDRs', get('ipvs.excludeCIDRs') as string[], problems);
  if (present('ipvs.strictARP')) options.ipvsStrictArp = get('ipvs.strictARP') === true;
  // kube-proxy hands IPVS whole seconds (libipvs: uint32(timeout.Seconds())); 0 leaves the kernel's value.
  for (const [path, option] of [
    ['ipvs.tcpTimeout', 'ipvsTcpTimeout'],
    ['ipvs.tcpFinTimeout', 'ipvsTcpfinTimeout'],
    ['ipvs.udpTimeout', 'ipvsUdpTimeout'],
  ] as const) {
    const value = ms(path);
    if (value !== undefined && value < 0) problems.push(`${path}: must be 0 or more`);
    else if (value !== undefined) options[option] = Math.trunc(value / 1000) * 1000;
  }

  // Checks kube-proxy's validation makes on fields kipvs otherwise ignores.
  const oomScoreAdj = get('oomScoreAdj');
  if (typeof oomScoreAdj === 'number' && (oomScoreAdj < -1000 || oomScoreAdj > 1000)) problems.push(`oomScoreAdj: ${oomScoreAdj} must be within [-1000, 1000]`);
  for (const path of [
    'conntrack.maxPerCore',
    'conntrack.min',
    'conntrack.tcpEstablishedTimeout',
    'conntrack.tcpCloseWaitTimeout',
    'conntrack.udpTimeout',
    'conntrack.udpStreamTimeout',
    'clientConnection.burst',
  ]) {
    if ((ms(path) ?? 0) < 0) problems.push(`${path}: must be 0 or more`);
  }

  for (const { paths, reason, acts } of IGNORED) {
    const acting = paths.filter((path) => present(path) && acts(get(path), get, path));
    const names = acting.flatMap((path) => (path === 'featureGates' ? Object.keys(get(path) as object).map((gate) => `featureGates.${gate}`) : [path]));
    if (names.length > 0) warnings.push(`ignored: ${names.join(', ')} (${reason})`);
  }
  return options;
}

/** Parses a KubeProxyConfiguration (YAML or JSON); `source` names it in messages (a path). */
export function parseKubeProxyConfiguration(text: string, source: string): KubeProxyConfigResult {
  // YAML 1.1 as sigs.k8s.io/yaml (go-yaml v2) reads it: `strictARP: yes` is true there too.
  const document = parseDocument(text, { version: '1.1', uniqueKeys: true, prettyErrors: false });
  if (document.errors.length > 0) {
    throw new KubeProxyConfigError(
      source,
      document.errors.map((error) => `not YAML or JSON: ${error.message.split('\n')[0]}`),
    );
  }
  const decoded: Decoded = { values: new Map(), problems: [], removed: [] };
  decodeStruct(document.toJS() as unknown, SCHEMA, '', decoded);
  const warnings: string[] = [];
  const options = interpret(
    (path) => decoded.values.get(path),
    (path) => decoded.values.has(path),
    decoded.problems,
    warnings,
  );
  for (const path of decoded.removed) warnings.push(`ignored: ${path} (${REMOVED[path]})`);
  if (decoded.problems.length > 0) throw new KubeProxyConfigError(source, decoded.problems);
  return { options, warnings };
}

/** Reads and parses kube-proxy's `--config` file. */
export function loadKubeProxyConfiguration(path: string): KubeProxyConfigResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new KubeProxyConfigError(path, [`cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`]);
  }
  return parseKubeProxyConfiguration(text, path);
}

/**
 * --write-config-to: the configuration kipvs runs with when given none, as a KubeProxyConfiguration
 * (kube-proxy's defaults, mode ipvs), which `--config` reads back to the same options.
 */
export function defaultKubeProxyConfiguration(): string {
  return stringify({
    apiVersion: KUBE_PROXY_API_VERSION,
    kind: KIND,
    mode: 'ipvs',
    bindAddress: '0.0.0.0',
    healthzBindAddress: '0.0.0.0:10256',
    metricsBindAddress: '127.0.0.1:10249',
    clusterCIDR: '',
    detectLocalMode: 'ClusterCIDR',
    nodePortAddresses: null,
    iptables: { masqueradeAll: false, masqueradeBit: 14 },
    ipvs: {
      scheduler: 'rr',
      syncPeriod: '30s',
      minSyncPeriod: '1s',
      strictARP: false,
      excludeCIDRs: null,
      tcpTimeout: '0s',
      tcpFinTimeout: '0s',
      udpTimeout: '0s',
    },
    conntrack: {
      maxPerCore: 32768,
      min: 131072,
      tcpEstablishedTimeout: '24h0m0s',
      tcpCloseWaitTimeout: '1h0m0s',
      tcpBeLiberal: false,
      udpTimeout: '0s',
      udpStreamTimeout: '0s',
    },
    logging: { format: 'json', verbosity: 0 },
  });
}
