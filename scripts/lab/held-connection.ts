// A TCP connection from a client namespace, kept open (tcp-hold.mjs, bounded to `holdSeconds`,
// 300 s unless told): it tells which backend answered, then echoes lines, so a test can check an
// established connection survives a change. Held for longer than the pod server's idle timeout
// (5 minutes), it needs `heartbeatSeconds`: a line of its own whenever it has been quiet that long. Answers are awaited up to GENEROUS_MS: a busy machine
// is slow, and a connection that broke still fails at once (the helper exits and says why).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { TestNetns } from './netns.js';
import { GENEROUS_MS } from './wait.js';

export interface HeldConnection {
  readonly backend: string;
  echo(text: string): Promise<string>;
  close(): void;
}

interface Waiter {
  resolve(line: string): void;
  reject(error: Error): void;
}

export function openHeld(client: TestNetns, host: string, port: number, holdSeconds = 300, heartbeatSeconds = 0): Promise<HeldConnection> {
  const target = `${host}:${String(port)}`;
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      client.name,
      process.execPath,
      join(import.meta.dirname, 'tcp-hold.mjs'),
      host,
      String(port),
      String(holdSeconds),
      String(heartbeatSeconds),
    ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const lines: string[] = [];
  let waiting: Waiter | undefined;
  let closed = false;
  let buffered = '';
  child.stdout.on('data', (data: Buffer) => {
    buffered += data.toString();
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      const waiter = waiting;
      waiting = undefined;
      if (waiter) waiter.resolve(line);
      else lines.push(line);
    }
  });
  child.once('exit', () => {
    closed = true;
    const waiter = waiting;
    waiting = undefined;
    waiter?.reject(new Error(`the held connection to ${target} closed`));
  });
  const nextLine = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const line = lines.shift();
      if (line !== undefined) {
        resolve(line);
        return;
      }
      if (closed) {
        reject(new Error(`the held connection to ${target} is closed`));
        return;
      }
      const timer = setTimeout(() => {
        waiting = undefined;
        reject(new Error(`no answer on the held connection to ${target} within ${String(GENEROUS_MS / 1000)} s`));
      }, GENEROUS_MS);
      waiting = {
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  return nextLine().then((first) => ({
    backend: first.split(' ')[0] ?? '',
    echo: async (text: string) => {
      child.stdin.write(`${text}\n`);
      return nextLine();
    },
    close: () => {
      child.kill();
    },
  }));
}
