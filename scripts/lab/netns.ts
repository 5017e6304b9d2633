// Network namespaces for the demo, the soak and the kernel tests: IPVS tables, ipsets, links and
// iptables are all per namespace, so a run touches nothing it did not make, also when it runs
// directly on a privileged host rather than in the UML sandbox.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface TestNetns {
  readonly name: string;
  /** /run/netns/<name>, for the `netns` option of kipvs's clients. */
  readonly path: string;
  /** Runs a command inside the namespace and returns its stdout; throws with stderr on failure. */
  run(command: string, args: readonly string[], input?: string): string;
  destroy(): void;
}

export function requireKernelSandbox(): void {
  if (!process.env.KIPVS_SANDBOX) {
    throw new Error('this runs through scripts/sandbox.mjs (e.g. npm run test:kernel, npm run demo), which provides a kernel with IPVS');
  }
}

export function createTestNetns(prefix = 'kipvs-test'): TestNetns {
  requireKernelSandbox();
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return {
    name,
    path: `/run/netns/${name}`,
    run(command, args, input) {
      const result = spawnSync('ip', ['netns', 'exec', name, command, ...args], { input, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
      if (result.status !== 0) {
        throw new Error(`${command} ${args.join(' ')} failed (${String(result.status)}): ${result.stderr}`);
      }
      return result.stdout;
    },
    destroy() {
      spawnSync('ip', ['netns', 'delete', name]);
    },
  };
}
