// A benchmark script that must run in the sandbox kernel: run on the host, it runs itself there
// (scripts/sandbox.mjs, 3 GB of memory unless KIPVS_SANDBOX_MEM says otherwise) and exits with
// its status; inside, it goes on.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';

/** In the sandbox: returns. On the host: runs `script` (this module's caller) there under tsx, then exits. */
export function runInSandbox(
  script: string,
  { nodeFlags = [], env = {} }: { readonly nodeFlags?: readonly string[]; readonly env?: NodeJS.ProcessEnv } = {},
): void {
  if (process.env.KIPVS_SANDBOX) return;
  const root = resolve(import.meta.dirname, '..');
  const run = spawnSync(process.execPath, [join(root, 'scripts', 'sandbox.mjs'), '--', process.execPath, ...nodeFlags, '--import', 'tsx', script], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, ...env, KIPVS_SANDBOX_MEM: process.env.KIPVS_SANDBOX_MEM ?? '3G' },
  });
  process.exit(run.status ?? 2);
}
