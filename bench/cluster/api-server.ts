// The API source's server for the daemon row: the tests' API server (bench/api-server-child.ts)
// serving the workload of N Services, in a process of its own so that neither its objects nor its
// CPU are counted as the daemon's, on 127.0.0.1 inside the sandbox.
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { sleep } from './shared.js';

export interface BenchApiServer {
  readonly kubeconfig: string;
  stop(): Promise<void>;
}

export async function startApiServer(size: number): Promise<BenchApiServer> {
  const child = fork(join(import.meta.dirname, '..', 'api-server-child.ts'), [String(size)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  const kubeconfig = await new Promise<string>((resolve, reject) => {
    child.once('message', (message) => resolve((message as { kubeconfig: string }).kubeconfig));
    child.once('exit', (code) => reject(new Error(`the test API server exited ${String(code)} before it served`)));
  });
  return {
    kubeconfig,
    stop: async () => {
      // It stops and exits once disconnected.
      const exited = new Promise((done) => child.once('exit', done));
      child.disconnect();
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
