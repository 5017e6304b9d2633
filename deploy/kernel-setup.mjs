// The kipvs DaemonSet's init container: loads the kernel modules IPVS mode uses and sets the
// sysctls kube-proxy's IPVS mode sets, with the agent's own code (dist/kernel/sysctl.js), so the
// agent container can run unprivileged. An unprivileged container sees /proc/sys read-only, and
// the agent writes a sysctl only when its value differs (ensureSysctls), so after this it only
// reads them. Privileged, and short-lived: it runs once per pod start.
//   node /opt/kipvs/deploy/kernel-setup.mjs --config=/var/lib/kipvs/config.conf [--ipvs-strict-arp]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { loadKubeProxyConfiguration } from '../dist/cli/kube-proxy-config.js';
import { ensureIpvsSysctls } from '../dist/kernel/sysctl.js';

// kube-proxy's documented IPVS prerequisites, plus ipset's core and the dummy link kube-ipvs0 is.
// Most would also load on first use; loading them here makes a missing one fail early and clearly.
const MODULES = ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'nf_conntrack', 'ip_set', 'dummy'];

function option(name) {
  const args = process.argv.slice(2);
  const index = args.findIndex((arg) => arg === name || arg.startsWith(`${name}=`));
  if (index < 0) return undefined;
  return args[index].includes('=') ? args[index].slice(name.length + 1) : (args[index + 1] ?? '');
}

function setup() {
  const configPath = option('--config');
  const fileOptions = configPath ? loadKubeProxyConfiguration(configPath).options : {};
  const strictArp = option('--ipvs-strict-arp') !== undefined || fileOptions.ipvsStrictArp === true;
  const modules = fileOptions.scheduler ? [...MODULES, `ip_vs_${fileOptions.scheduler}`] : MODULES;

  for (const module of new Set(modules)) {
    const result = spawnSync('modprobe', [module], { encoding: 'utf8' });
    // A module built into the kernel, or one the node's /lib/modules lacks but that is already
    // loaded, is fine; otherwise the agent says what is missing when it needs it.
    if (result.status !== 0 && !existsSync(`/sys/module/${module}`)) {
      console.error(`kernel-setup: modprobe ${module} failed: ${(result.stderr || String(result.error ?? '')).trim()}`);
    }
  }

  const { changes, skipped } = ensureIpvsSysctls({ strictArp, kernelRelease: release() });
  for (const change of changes) console.log(`kernel-setup: set ${change.name} from ${change.old} to ${change.new}`);
  for (const skip of skipped) console.log(`kernel-setup: left ${skip.name} as is: ${skip.reason}`);
}

try {
  setup();
} catch (error) {
  // An invalid config.conf or a sysctl that cannot be set: one line, and the pod does not start.
  console.error(`kernel-setup: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
