// Steady traffic from the client namespace (steady-client.mjs), counted as it goes, so a run can
// wait for traffic ("10 more answers") instead of sleeping, and report every failure.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { TestNetns } from './netns.js';
import { GENEROUS_MS } from './wait.js';

export interface TargetTally {
  readonly target: string;
  readonly ok: number;
  readonly failed: number;
  /** The first failures, with their time and reason. */
  readonly errors: readonly string[];
}

export interface SteadyClient {
  /** Answers and failures so far, per target. */
  tally(): TargetTally[];
  /** Stops the client and returns the final tally. */
  stop(): Promise<TargetTally[]>;
}

export function startSteadyClient(client: TestNetns, targets: readonly { host: string; port: number }[], maxSeconds = 3600): Promise<SteadyClient> {
  const child = spawn(
    'ip',
    ['netns', 'exec', client.name, process.execPath, join(import.meta.dirname, 'steady-client.mjs'), JSON.stringify(targets), String(maxSeconds)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const ok = targets.map(() => 0);
  const failed = targets.map(() => 0);
  const errors: string[][] = targets.map(() => []);
  let buffered = '';
  let started = false;
  // 'close', not 'exit': only then has all of its output been read, the last answers and failures too.
  const closed = new Promise<void>((resolve) => {
    child.once('close', () => {
      resolve();
    });
  });
  const tally = (): TargetTally[] =>
    targets.map((t, index) => ({ target: `${t.host}:${String(t.port)}`, ok: ok[index] ?? 0, failed: failed[index] ?? 0, errors: errors[index] ?? [] }));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`the steady client did not start within ${String(GENEROUS_MS / 1000)} s`));
    }, GENEROUS_MS);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (data: string) => {
      buffered += data;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const [word, indexText, ...rest] = line.split(' ');
        const index = Number(indexText);
        if (word === 'ok') ok[index] = (ok[index] ?? 0) + 1;
        else if (word === 'fail') {
          failed[index] = (failed[index] ?? 0) + 1;
          if ((errors[index]?.length ?? 5) < 5) errors[index]?.push(rest.join(' '));
        } else if (word === 'started' && !started) {
          started = true;
          clearTimeout(timer);
          resolve({
            tally,
            stop: async () => {
              child.stdin.end('stop\n');
              await closed;
              return tally();
            },
          });
        }
      }
    });
  });
}
