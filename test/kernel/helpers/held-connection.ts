// A TCP connection from a client namespace, kept open (tcp-hold.mjs, bounded to 30 s): it tells
// which backend answered, then echoes lines, so a test can check an established connection
// survives a change.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { TestNetns } from './netns.js';

export interface HeldConnection {
  readonly backend: string;
  echo(text: string): Promise<string>;
  close(): void;
}

export function openHeld(client: TestNetns, host: string, port: number): Promise<HeldConnection> {
  const child = spawn('ip', ['netns', 'exec', client.name, process.execPath, join(import.meta.dirname, 'tcp-hold.mjs'), host, String(port)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  let waiting: ((line: string) => void) | undefined;
  let buffered = '';
  child.stdout!.on('data', (data: Buffer) => {
    buffered += data.toString();
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (waiting) {
        const resolve = waiting;
        waiting = undefined;
        resolve(line);
      } else lines.push(line);
    }
  });
  const nextLine = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const line = lines.shift();
      if (line !== undefined) return resolve(line);
      const timer = setTimeout(() => reject(new Error('no answer on the held connection within 10 s')), 10_000);
      waiting = (l) => {
        clearTimeout(timer);
        resolve(l);
      };
    });
  return nextLine().then((first) => ({
    backend: first.split(' ')[0]!,
    echo: async (text: string) => {
      child.stdin!.write(`${text}\n`);
      return nextLine();
    },
    close: () => child.kill(),
  }));
}
