// The few iptables rules IPVS mode needs, applied with the iptables tools the node already uses.
// kipvs owns a fixed set of chains (rewritten in full on every apply) and a fixed set of jumps into
// them from the built-in chains (added only when absent); everything else in the tables belongs to
// someone else and is never flushed, reordered or removed. Each apply is one `*-restore --noflush`
// per family, so a table changes atomically (kube-proxy's RestoreAll with NoFlushTables).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { AddressFamily } from '../ip.js';
import { KipvsError } from '../errors.js';
import {
  jumpRuleSpec,
  renderRestoreInput,
  TABLES,
  type IptablesChainRef,
  type IptablesJump,
  type IptablesOwnership,
  type IptablesRuleset,
  type IptablesTable,
} from '../model/iptables.js';

export type IptablesBackendMode = 'legacy' | 'nft';

export interface IptablesOptions {
  /** A named network namespace (`kipvs-test-1a2b3c` or /run/netns/kipvs-test-1a2b3c); tools run in it. */
  readonly netns?: string;
  /** The backend to use; without it every call detects one (the agent detects once and passes it). */
  readonly backend?: IptablesBackendMode;
}

/** A failed iptables operation: the tool, the table and chain concerned (when known) and its stderr. */
export class IptablesError extends KipvsError {
  constructor(
    code: 'KIPVS_IPTABLES_EXEC' | 'KIPVS_IPTABLES_SAVE' | 'KIPVS_IPTABLES_RESTORE' | 'KIPVS_IPTABLES_CHAIN_IN_USE',
    readonly operation: string,
    readonly table: IptablesTable | undefined,
    readonly chain: string | undefined,
    readonly stderr: string,
  ) {
    const where = [table && `table ${table}`, chain && `chain ${chain}`].filter(Boolean).join(', ');
    super(code, `${operation}${where ? ` (${where})` : ''}: ${stderr.trim() || 'failed'}`);
  }
}

// ---- running the tools: the one place that knows about network namespaces ----

interface ToolResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

function netnsName(netns: string): string {
  const name = netns.startsWith('/run/netns/') ? netns.slice('/run/netns/'.length) : netns;
  if (name === '' || name.includes('/')) {
    throw new IptablesError(
      'KIPVS_IPTABLES_EXEC',
      `run iptables in network namespace ${netns}`,
      undefined,
      undefined,
      'only named namespaces (ip netns) are supported',
    );
  }
  return name;
}

/** Runs `tool args` (inside `ip netns exec NAME` for a namespace) with an argument array, never a shell. */
function runTool(tool: string, args: readonly string[], options: IptablesOptions, input?: string): Promise<ToolResult> {
  const [command, argv] = options.netns === undefined ? [tool, args] : ['ip', ['netns', 'exec', netnsName(options.netns), tool, ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.stdin.on('error', () => {}); // a tool that exits early closes its stdin; its status says why
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(new IptablesError('KIPVS_IPTABLES_EXEC', `run ${tool}`, undefined, undefined, `${command}: ${error.code ?? error.message}`)),
    );
    child.on('close', (status) =>
      resolve({ status: status ?? 1, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') }),
    );
    child.stdin.end(input ?? '');
  });
}

const toolName = (family: AddressFamily, mode: IptablesBackendMode, suffix: '' | '-save' | '-restore'): string =>
  `${family === 'inet6' ? 'ip6tables' : 'iptables'}-${mode}${suffix}`;

/**
 * Runs each command in turn in one `sh` (inside `ip netns exec NAME` for a namespace) and returns
 * each one's status, stdout and stderr (less its trailing newlines). For read-only commands: under a
 * slow kernel (User-Mode Linux) each process node starts costs a fork of node (its page tables) and
 * the `ip netns exec` around it, 100-300 ms each, where the tools themselves take tens. No
 * caller's text reaches the script: it names the commands' words only as positional parameters
 * ("$3"), and a random boundary (that no output can guess) frames each result.
 */
export async function runToolsInOneShell(commands: ReadonlyArray<readonly string[]>, options: IptablesOptions): Promise<ToolResult[]> {
  const boundary = `kipvs-${randomBytes(16).toString('hex')}`;
  const words: string[] = [];
  const lines = ['exec 3>&1', 'b=$1'];
  for (const command of commands) {
    const refs = command.map((word) => {
      words.push(word);
      return `"\${${words.length + 1}}"`; // "${N}": $1 is the boundary
    });
    // stdout straight to fd 3 (the real stdout), stderr captured: then the status and stderr.
    lines.push(`e=$(${refs.join(' ')} 2>&1 >&3 3>&-); s=$?; printf '\\n%s %s\\n%s\\n%s\\n' "$b" "$s" "$e" "$b"`);
  }
  const result = await runTool('sh', ['-c', lines.join('\n'), 'sh', boundary, ...words], options);
  if (result.status !== 0) throw new IptablesError('KIPVS_IPTABLES_EXEC', `run ${commands.map((c) => c[0]).join(', ')}`, undefined, undefined, result.stderr);
  const results: ToolResult[] = [];
  let rest = result.stdout;
  for (let i = 0; i < commands.length; i++) {
    const head = rest.indexOf(`\n${boundary} `);
    const end = rest.indexOf(`\n${boundary}\n`, head + 1);
    if (head < 0 || end < 0)
      throw new IptablesError(
        'KIPVS_IPTABLES_EXEC',
        `read the output of ${commands[i]?.[0] ?? 'sh'}`,
        undefined,
        undefined,
        result.stderr || 'output cut short',
      );
    const [statusLine = '', ...stderr] = rest.slice(head + boundary.length + 2, end).split('\n');
    results.push({ status: Number(statusLine), stdout: rest.slice(0, head), stderr: stderr.join('\n') });
    rest = rest.slice(end + boundary.length + 2);
  }
  return results;
}

/**
 * Whether MASQUERADE takes --random-fully: iptables 1.6.2 and later, as kube-proxy's
 * HasRandomFully() decides from `iptables --version`.
 */
const versionHasRandomFully = (versionOutput: string): boolean => {
  const match = /v(\d+)\.(\d+)\.(\d+)/.exec(versionOutput);
  if (!match) return false;
  const [major, minor, patch] = match.slice(1).map(Number) as [number, number, number];
  return major > 1 || (major === 1 && (minor > 6 || (minor === 6 && patch >= 2)));
};

// ---- backend detection, as kube-proxy's image does it (kubernetes-sigs/iptables-wrappers) ----

export interface IptablesBackend {
  readonly mode: IptablesBackendMode;
  /** Why this mode, for the agent's log. */
  readonly reason: string;
}

const MODES = ['nft', 'legacy'] as const;
const FAMILIES = ['inet', 'inet6'] as const;

/**
 * What detection reads, in one process: each backend's tables of both families (without -t: asking
 * iptables-legacy-save for a table would make the kernel create it), `iptables --version` (the last
 * resort) and each backend's own --version (for --random-fully). The --version runs change nothing,
 * so all are run, whether the choice needs them or not.
 */
async function surveyIptables(
  options: IptablesOptions,
): Promise<{ saves: Record<IptablesBackendMode, string>; version: ToolResult; modeVersions: Record<IptablesBackendMode, ToolResult> }> {
  const saveCommands = MODES.flatMap((mode) => FAMILIES.map((family) => [toolName(family, mode, '-save')]));
  const versionCommands = [['iptables', '--version'], ...MODES.map((mode) => [toolName('inet', mode, ''), '--version'])];
  const results = await runToolsInOneShell([...saveCommands, ...versionCommands], options);
  // A tool that fails or is missing (status 127) lists nothing.
  const saveOf = (mode: IptablesBackendMode): string =>
    results
      .slice(MODES.indexOf(mode) * FAMILIES.length, (MODES.indexOf(mode) + 1) * FAMILIES.length)
      .map((result) => (result.status === 0 ? result.stdout : ''))
      .join('\n');
  const at = (index: number): ToolResult => results[saveCommands.length + index] ?? { status: 1, stdout: '', stderr: '' };
  return { saves: { nft: saveOf('nft'), legacy: saveOf('legacy') }, version: at(0), modeVersions: { nft: at(1), legacy: at(2) } };
}

/** The backend, and whether its MASQUERADE takes --random-fully (kube-proxy's HasRandomFully()). */
export async function detectIptables(options: Omit<IptablesOptions, 'backend'> = {}): Promise<{ backend: IptablesBackend; randomFully: boolean }> {
  const survey = await surveyIptables(options);
  const backend = await chooseBackend(survey.saves, survey.version, options);
  return { backend, randomFully: versionHasRandomFully(survey.modeVersions[backend.mode].stdout) };
}

export async function detectIptablesBackend(options: Omit<IptablesOptions, 'backend'> = {}): Promise<IptablesBackend> {
  return (await detectIptables(options)).backend;
}

/**
 * iptables-wrappers' order: kubelet's KUBE-IPTABLES-HINT / KUBE-KUBELET-CANARY chain says which
 * backend the node uses; else the backend with more Kubernetes (KUBE-/kube) rules; else the one with
 * more rules at all; else what `iptables --version` says the distribution's default is.
 */
async function chooseBackend({ nft, legacy }: Record<IptablesBackendMode, string>, version: ToolResult, options: IptablesOptions): Promise<IptablesBackend> {
  const hint = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) /m;
  if (hint.test(nft)) return { mode: 'nft', reason: 'kubelet hint chain (KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY) found with iptables-nft' };
  if (hint.test(legacy)) return { mode: 'legacy', reason: 'kubelet hint chain (KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY) found with iptables-legacy' };
  const rules = (text: string): string[] => text.split('\n').filter((line) => line.startsWith('-'));
  const kube = (text: string): number => rules(text).filter((line) => /kube/i.test(line)).length;
  const [kubeNft, kubeLegacy] = [kube(nft), kube(legacy)];
  if (kubeNft !== kubeLegacy) {
    const mode = kubeNft > kubeLegacy ? 'nft' : 'legacy';
    return { mode, reason: `more Kubernetes rules with iptables-${mode} (legacy ${kubeLegacy}, nft ${kubeNft})` };
  }
  const [allNft, allLegacy] = [rules(nft).length, rules(legacy).length];
  if (allNft !== allLegacy) {
    const mode = allNft > allLegacy ? 'nft' : 'legacy';
    return { mode, reason: `more rules with iptables-${mode} (legacy ${allLegacy}, nft ${allNft})` };
  }
  const mode = /\(nf_tables\)/.test(version.stdout) ? 'nft' : /\(legacy\)/.test(version.stdout) ? 'legacy' : undefined;
  if (version.status !== 0 || mode === undefined) {
    throw new IptablesError(
      'KIPVS_IPTABLES_EXEC',
      'detect the iptables backend with iptables --version',
      undefined,
      undefined,
      version.stderr || version.stdout,
    );
  }
  if (mode === 'nft') {
    // A kernel without nf_tables NAT (User-Mode Linux's, older ones) lists an empty nat table but
    // refuses to create one ("Operation not supported"); then legacy is the only backend that works.
    // Listing and --test do not tell, so the probe creates a chain of ours and deletes it.
    const probe = await runTool('iptables-nft', ['-w', '5', '-t', 'nat', '-N', 'KIPVS-BACKEND-PROBE'], options).catch(() => undefined);
    if (probe?.status === 0) await runTool('iptables-nft', ['-w', '5', '-t', 'nat', '-X', 'KIPVS-BACKEND-PROBE'], options);
    if (probe && probe.status !== 0) {
      return {
        mode: 'legacy',
        reason: `no rules to tell by; iptables --version says nf_tables, but its nat table fails here (${probe.stderr.trim().split('\n')[0]})`,
      };
    }
  }
  return { mode, reason: `no rules to tell by (${allLegacy} each); iptables --version says ${version.stdout.trim()}` };
}

// ---- reading the tables ----

interface SavedTable {
  readonly chains: Set<string>;
  /** `-A CHAIN …` lines, as iptables-save prints them. */
  readonly rules: string[];
}

/** Splits iptables-save output into tables; the counters and comments are dropped. */
export function parseIptablesSave(text: string): Map<string, SavedTable> {
  const tables = new Map<string, SavedTable>();
  let current: SavedTable | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) tables.set(line.slice(1), (current = { chains: new Set(), rules: [] }));
    else if (line.startsWith(':')) current?.chains.add(line.slice(1).split(' ')[0] ?? '');
    else if (line.startsWith('-A ')) current?.rules.push(line);
  }
  return tables;
}

async function save(family: AddressFamily, mode: IptablesBackendMode, options: IptablesOptions): Promise<Map<string, SavedTable>> {
  const tool = toolName(family, mode, '-save');
  const result = await runTool(tool, [], options);
  if (result.status !== 0) throw new IptablesError('KIPVS_IPTABLES_SAVE', `read the tables with ${tool}`, undefined, undefined, result.stderr);
  return parseIptablesSave(result.stdout);
}

const jumpSaveLine = (jump: IptablesJump): string => `-A ${jump.from} ${jumpRuleSpec(jump)}`;

// ---- writing ----

/** Maps iptables-restore's "line N failed" back to the table and chain of our input. */
function restoreError(tool: string, operation: string, input: string, stderr: string): IptablesError {
  // Legacy and nft restore say `line N failed` (at COMMIT) or `Error occurred at line: N` (parsing).
  const lineNumber = Number(/line (\d+) failed|at line: (\d+)/.exec(stderr)?.slice(1).find(Boolean) ?? 0);
  const lines = input.split('\n');
  let table: IptablesTable | undefined;
  for (const line of lines.slice(0, lineNumber || lines.length)) if (line.startsWith('*')) table = line.slice(1) as IptablesTable;
  const failed = lineNumber ? lines[lineNumber - 1] : undefined;
  const chain = failed && /^(?:-[AIDX] |:)(\S+)/.exec(failed)?.[1];
  const detail = failed ? `${stderr.trim()} [${failed}]` : stderr;
  return new IptablesError('KIPVS_IPTABLES_RESTORE', `${operation} with ${tool}`, lineNumber ? table : undefined, chain || undefined, detail);
}

async function restore(family: AddressFamily, mode: IptablesBackendMode, input: string, operation: string, options: IptablesOptions): Promise<void> {
  const tool = toolName(family, mode, '-restore');
  // -w: wait for the xtables lock rather than fail while another agent (kubelet, a CNI) holds it.
  const result = await runTool(tool, ['-w', '5', '--noflush'], options, input);
  if (result.status !== 0) throw restoreError(tool, operation, input, result.stderr);
}

export interface IptablesApplyResult {
  readonly backend: IptablesBackend;
  /** Jumps that were missing and were added. */
  readonly insertedJumps: readonly IptablesJump[];
  /** The number of rules in kipvs's chains (constant: the Services live in the ipsets). */
  readonly ruleCount: number;
  /** What was fed to iptables-restore, for logs and --dry-run comparisons. */
  readonly restoreInput: string;
}

const backendFor = async (options: IptablesOptions): Promise<IptablesBackend> =>
  options.backend ? { mode: options.backend, reason: 'configured' } : detectIptablesBackend(options);

/** Writes kipvs's chains in full and adds the jumps that are missing, in one restore per call. */
export async function applyIptablesRules(ruleset: IptablesRuleset, options: IptablesOptions = {}): Promise<IptablesApplyResult> {
  const backend = await backendFor(options);
  const tables = await save(ruleset.family, backend.mode, options);
  const missingJumps = ruleset.jumps.filter((jump) => !tables.get(jump.table)?.rules.includes(jumpSaveLine(jump)));
  const restoreInput = renderRestoreInput(ruleset, missingJumps);
  await restore(ruleset.family, backend.mode, restoreInput, 'write kipvs chains', options);
  const ruleCount = TABLES.reduce((count, table) => count + ruleset.rules[table].length, 0);
  return { backend, insertedJumps: missingJumps, ruleCount, restoreInput };
}

export interface IptablesCleanupResult {
  readonly backend: IptablesBackend;
  readonly removedJumps: number;
  readonly removedChains: readonly IptablesChainRef[];
}

/** Removes exactly kipvs's jumps (every copy) and chains, and nothing else. */
export async function cleanupIptables(family: AddressFamily, ownership: IptablesOwnership, options: IptablesOptions = {}): Promise<IptablesCleanupResult> {
  const backend = await backendFor(options);
  const tables = await save(family, backend.mode, options);
  const lines: string[] = [];
  let removedJumps = 0;
  const removedChains: IptablesChainRef[] = [];
  for (const table of TABLES) {
    const saved = tables.get(table);
    if (!saved) continue; // never instantiated, so nothing of ours is in it
    const jumps = ownership.jumps.filter((jump) => jump.table === table);
    const ours = new Set(ownership.chains.filter((ref) => ref.table === table && saved.chains.has(ref.chain)).map((ref) => ref.chain));
    const deletions = saved.rules.flatMap((rule) => jumps.filter((jump) => rule === jumpSaveLine(jump)).map((jump) => `-D ${jump.from} ${jumpRuleSpec(jump)}`));
    // A rule of someone else's that jumps to one of our chains would make -X fail; say whose.
    const foreign = saved.rules.find((rule) => {
      const [, chain, target] = /^-A (\S+) .*-[jg] (\S+)/.exec(rule) ?? [];
      return chain !== undefined && target !== undefined && ours.has(target) && !ours.has(chain) && !jumps.some((jump) => rule === jumpSaveLine(jump));
    });
    if (foreign) {
      const target = /-[jg] (\S+)/.exec(foreign)?.[1];
      throw new IptablesError('KIPVS_IPTABLES_CHAIN_IN_USE', 'remove kipvs chains', table, target, `still referenced by a rule kipvs does not own: ${foreign}`);
    }
    if (deletions.length === 0 && ours.size === 0) continue;
    lines.push(`*${table}`, ...deletions, ...[...ours].map((chain) => `:${chain} - [0:0]`), ...[...ours].map((chain) => `-X ${chain}`), 'COMMIT');
    removedJumps += deletions.length;
    removedChains.push(...[...ours].map((chain) => ({ table, chain })));
  }
  if (lines.length > 0) await restore(family, backend.mode, `${lines.join('\n')}\n`, 'remove kipvs chains and jumps', options);
  return { backend, removedJumps, removedChains };
}
