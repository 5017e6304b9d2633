// `kipvs agent` (the built CLI) as a child process, as the kernel tests run it: its pino JSON log
// (stderr) collected line by line, waits for a log line or for any condition that fail at once,
// with the log, when the agent exits, and a stop that sends a signal and awaits the exit. Every
// wait has a deadline (GENEROUS_MS unless told): a busy machine is slow, a hung agent still ends
// the run. And any other kipvs command, run to completion.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { TestNetns } from './netns.js';
import { GENEROUS_MS, WaitTimeout, waitUntil } from './wait.js';

/** The built CLI (npm run build). */
export const KIPVS_CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

/** Runs `kipvs <args>` to completion; returns its stdout, or throws with its exit status and stderr. */
export function runKipvs(...args: string[]): string {
  const result = spawnSync(process.execPath, [KIPVS_CLI, ...args], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`kipvs ${args.join(' ')} failed (${String(result.status)}): ${result.stderr}`);
  return result.stdout;
}

export interface AgentLogLine {
  /** The line as the agent wrote it. */
  readonly text: string;
  /** Its pino fields; undefined for a line that is not a JSON object (a crash's stack trace, say). */
  readonly fields: Readonly<Record<string, unknown>> | undefined;
  /** Its message (pino's `msg`), undefined when it has none. */
  readonly msg: string | undefined;
}

export interface AgentProcess {
  readonly pid: number | undefined;
  /** The complete log lines so far, in order. */
  readonly lines: readonly AgentLogLine[];
  /** Everything the agent wrote to stderr so far, as it wrote it. */
  log(): string;
  /** False once the agent has exited. */
  readonly running: boolean;
  /** Its exit code once it has exited (null when a signal ended it); undefined while it runs. */
  readonly exitCode: number | null | undefined;
  /**
   * Polls `condition` (every `intervalMs`) until it holds; returns how long that took (ms). Throws,
   * with the agent's log, when the agent exits first or at the deadline.
   */
  waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs?: number, intervalMs?: number): Promise<number>;
  /** Waits for a log line (since the start) that `matches`, and returns it; throws as waitFor does. */
  waitForLog(what: string, matches: (line: AgentLogLine) => boolean, timeoutMs?: number): Promise<AgentLogLine>;
  /**
   * Sends `signal` (unless it has exited already) and awaits the exit and the end of its log;
   * returns the exit code (null when a signal ended it). Past the deadline it kills the agent and throws.
   */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

export interface AgentOptions {
  /** The node it runs as (--hostname-override): node-a unless told, the node the tests' EndpointSlices name. */
  readonly hostname?: string;
  /** Also pass the agent's stderr on to this process's, as it comes (besides collecting it). */
  readonly echo?: boolean;
}

/** The log for an error message: all of it, or its start and end when it is long. */
function logExcerpt(text: string): string {
  const lines = text.split('\n');
  if (lines.length <= 300) return text;
  return [...lines.slice(0, 100), `… ${String(lines.length - 300)} lines left out …`, ...lines.slice(-200)].join('\n');
}

function parseLine(text: string): AgentLogLine {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { text, fields: undefined, msg: undefined };
  const fields = parsed as Record<string, unknown>;
  return { text, fields, msg: typeof fields.msg === 'string' ? fields.msg : undefined };
}

/** Starts `kipvs agent --netns <node> --hostname-override <hostname>` with `args` (its other flags). */
export function startAgent(node: Pick<TestNetns, 'name'>, args: readonly string[], options: AgentOptions = {}): AgentProcess {
  const command = [KIPVS_CLI, 'agent', '--netns', node.name, '--hostname-override', options.hostname ?? 'node-a', ...args];
  const child = spawn(process.execPath, command, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  let partial = '';
  const lines: AgentLogLine[] = [];
  let exit: { code: number | null } | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exit = { code };
      resolve(code);
    });
    // Without a pid it never started: no 'exit' follows.
    child.once('error', (error) => {
      if (child.pid !== undefined) return;
      spawnError = error;
      exit = { code: null };
      resolve(null);
    });
  });
  // The end of its log, which may come a little after the exit.
  const logEnded = new Promise<void>((resolve) => {
    child.stderr.once('close', () => {
      resolve();
    });
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (data: string) => {
    if (options.echo) process.stderr.write(data);
    log += data;
    const complete = (partial + data).split('\n');
    partial = complete.pop() ?? '';
    for (const text of complete) if (text !== '') lines.push(parseLine(text));
  });

  const withLog = (message: string): Error => new Error(`${message}; agent log:\n${logExcerpt(log)}`);
  const exitedMessage = (): string =>
    spawnError ? `could not start (${spawnError.message})` : `exited with ${String(exit?.code)}${child.signalCode ? ` (${child.signalCode})` : ''}`;

  const waitFor: AgentProcess['waitFor'] = async (what, condition, timeoutMs = GENEROUS_MS, intervalMs = 100) => {
    try {
      return await waitUntil(
        what,
        async () => {
          if (await condition()) return true;
          if (exit !== undefined) throw withLog(`${what}: the agent ${exitedMessage()}`);
          return false;
        },
        timeoutMs,
        intervalMs,
      );
    } catch (error) {
      throw error instanceof WaitTimeout ? withLog(error.message) : error;
    }
  };

  return {
    pid: child.pid,
    lines,
    log: () => log,
    get running() {
      return exit === undefined;
    },
    get exitCode() {
      return exit?.code;
    },
    waitFor,
    async waitForLog(what, matches, timeoutMs = GENEROUS_MS) {
      await waitFor(what, () => lines.some(matches), timeoutMs);
      // Lines are only ever added: the one the wait saw is still there.
      const found = lines.find(matches);
      if (found === undefined) throw new Error(`${what}: the matching log line went missing`);
      return found;
    },
    async stop(signal = 'SIGTERM', timeoutMs = GENEROUS_MS) {
      if (exit === undefined) child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => {
          resolve('deadline');
        }, timeoutMs);
      });
      const outcome = await Promise.race([exited, deadline]);
      clearTimeout(timer);
      if (outcome === 'deadline') {
        child.kill('SIGKILL');
        throw withLog(`the agent did not exit within ${String(Math.round(timeoutMs / 1000))} s of ${signal}`);
      }
      // Its last lines, for a caller that reads the log next (a process it started may hold the pipe: not for long).
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([
        logEnded,
        new Promise<void>((resolve) => {
          grace = setTimeout(resolve, 2_000);
        }),
      ]);
      clearTimeout(grace);
      return outcome;
    },
  };
}

/**
 * How long after `since` (ms since the epoch) the agent logged the end of the first sync that
 * changed the kernel, by the agent's own clock (the same kernel's as the caller's); undefined while
 * it has logged none. A latency the agent itself shows, free of what each look at the kernel costs
 * the caller (a process through `ip netns exec`: a second or more on a busy machine).
 */
export function changingSyncLoggedAfter(agent: AgentProcess, since: number): number | undefined {
  for (const line of agent.lines) {
    if (line.msg !== 'synced' || !(Number(line.fields?.operations) > 0)) continue;
    const at = Date.parse(String(line.fields?.time));
    if (at >= since) return at - since;
  }
  return undefined;
}
