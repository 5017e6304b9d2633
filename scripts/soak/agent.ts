// The agent as the soak runs it: the built CLI as a daemon on a file source, programming a node
// namespace, with its metrics on a loopback port (the count of syncs, RSS and heap come from there).
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const cli = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

export interface AgentProcess {
  readonly pid: number;
  /** Everything the agent logged (stderr). */
  log(): string;
  /** The Prometheus text, or undefined while the metrics server does not answer. */
  metrics(): Promise<string | undefined>;
  /** Completed syncs (kubeproxy_sync_proxy_rules_duration_seconds_count), 0 while unknown. */
  syncs(): Promise<number>;
  /** Sends the signal and waits for the exit; returns the exit code (null when killed). */
  stop(signal: NodeJS.Signals): Promise<number | null>;
  readonly exited: boolean;
}

export interface AgentOptions {
  readonly source: string;
  readonly netns: string;
  readonly metricsPort: number;
  readonly extraArgs?: readonly string[];
}

export function startAgent(options: AgentOptions): AgentProcess {
  const args = [cli, 'agent', '--source', options.source, '--netns', options.netns, '--hostname-override', 'node-a'];
  args.push('--metrics-bind-address', `127.0.0.1:${String(options.metricsPort)}`, '--healthz-bind-address', '', ...(options.extraArgs ?? []));
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (data: Buffer) => {
    log += data.toString();
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    });
  });
  const metrics = async (): Promise<string | undefined> => {
    try {
      const response = await fetch(`http://127.0.0.1:${String(options.metricsPort)}/metrics`, { signal: AbortSignal.timeout(10_000) });
      return response.ok ? await response.text() : undefined;
    } catch {
      return undefined;
    }
  };
  return {
    pid: child.pid ?? -1,
    log: () => log,
    metrics,
    syncs: async () => metricValue(await metrics(), 'kubeproxy_sync_proxy_rules_duration_seconds_count') ?? 0,
    stop: async (signal) => {
      if (exitCode === undefined) child.kill(signal);
      return exited;
    },
    get exited() {
      return exitCode !== undefined;
    },
  };
}

/** The sum of a metric's samples (over its labels), or undefined when it is absent. */
export function metricValue(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!rest.startsWith(' ') && !rest.startsWith('{')) continue;
    sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
