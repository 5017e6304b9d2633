// Stopping the agent at a chosen point of a sync. A sync of 1,000 Services puts its 12,000 real
// servers into the kernel in a few hundred milliseconds (UML, measured: 5,100 → 11,587 between
// two looks 120 ms apart), faster than a look at the table can follow. So the agent is run in
// slices: frozen (SIGSTOP), the table looked at while nothing changes it, thawed (SIGCONT) for a
// slice, frozen again. A slice is halved while it lets more than `step` real servers in and
// doubled, up to a cap, while it lets few in (startup, the iptables rules); the cap bounds what
// the first slice of a burst lets in (25 ms: ~900 real servers at the rate above). The agent's requests go to the
// kernel in datagrams of a few dozen, each applied whole inside one sendmsg, so a freeze lands at
// most a datagram after the slice ends. What the agent does is unchanged: being descheduled for a
// while is what a busy machine does to it too.
import { readFileSync, readdirSync } from 'node:fs';
import type { AgentProcess } from '../lab/agent-process.js';
import { GENEROUS_MS, WaitTimeout, sleep } from '../lab/wait.js';
import type { TableWatch } from './table-watch.js';

const MIN_SLICE_MS = 1;

/** The state letter of each thread of `pid` (/proc/PID/task/TID/stat); empty once it is gone. */
function threadStates(pid: number): string[] {
  try {
    return readdirSync(`/proc/${String(pid)}/task`).map((tid) => {
      const stat = readFileSync(`/proc/${String(pid)}/task/${tid}/stat`, 'latin1');
      // pid (comm) STATE ...: comm may hold spaces and parentheses, the state follows the last ')'.
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    });
  } catch {
    return [];
  }
}

/**
 * Sends SIGSTOP and waits until every thread of the agent has stopped (the signal takes effect
 * when a thread next leaves the kernel). Returns false when the agent has exited instead.
 */
export async function freeze(agent: AgentProcess, timeoutMs = GENEROUS_MS): Promise<boolean> {
  const pid = agent.pid;
  if (pid === undefined || !agent.running) return false;
  try {
    process.kill(pid, 'SIGSTOP');
  } catch {
    return false;
  }
  const started = Date.now();
  for (;;) {
    const states = threadStates(pid);
    if (states.length === 0 || states.includes('Z') || states.includes('X')) return false;
    if (states.every((state) => state === 'T' || state === 't')) return true;
    if (Date.now() - started > timeoutMs)
      throw new WaitTimeout(`every thread of the agent (pid ${String(pid)}) to stop (states ${states.join('')})`, timeoutMs);
    await sleep(1);
  }
}

export function thaw(agent: AgentProcess): void {
  if (agent.pid !== undefined && agent.running) process.kill(agent.pid, 'SIGCONT');
}

export interface StepOptions {
  /** Real servers counted (TableWatch.realServers's prefix). */
  readonly addressPrefixHex?: string;
  /** Real servers a slice should let in at most. */
  readonly step: number;
  /** The longest slice (25 ms unless told). */
  readonly maxSliceMs?: number;
  readonly timeoutMs: number;
}

/**
 * Runs the (running) agent in slices until a look at the frozen table satisfies `reached`; returns
 * that count with the agent left frozen, or undefined when the agent exited first.
 */
export async function stepUntil(
  agent: AgentProcess,
  watch: TableWatch,
  what: string,
  reached: (realServers: number) => boolean,
  options: StepOptions,
): Promise<number | undefined> {
  const started = Date.now();
  const maxSlice = options.maxSliceMs ?? 25;
  let slice = maxSlice;
  let last: number | undefined;
  for (;;) {
    if (!(await freeze(agent))) return undefined;
    const count = watch.realServers(options.addressPrefixHex);
    if (reached(count)) return count;
    if (Date.now() - started > options.timeoutMs) {
      thaw(agent);
      throw new WaitTimeout(`${what} (the table held ${String(count)} real servers)`, options.timeoutMs);
    }
    const progressed = last === undefined ? 0 : Math.abs(count - last);
    last = count;
    if (progressed > options.step) slice = Math.max(MIN_SLICE_MS, Math.floor(slice / 2));
    else if (progressed < options.step / 4) slice = Math.min(maxSlice, slice * 2);
    thaw(agent);
    await sleep(slice);
  }
}
