#!/usr/bin/env node
// Runs a command in a kernel that has IPVS: directly when the host kernel has it and we are root,
// otherwise inside Debian's User-Mode Linux kernel with the host filesystem as its root (hostfs),
// so node and the project run inside unchanged. Never skips: when neither is possible it fails
// and says why.
//
//   node scripts/sandbox.mjs -- <command> [args...]
//
// Environment: KIPVS_SANDBOX=direct|uml forces a mode; KIPVS_SANDBOX_MEM (default 2G);
// KIPVS_SANDBOX_TIMEOUT seconds (default 3600).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hostHasIpvs } from './kernel-mode.mjs';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// Modules kipvs and its tests use: IPVS and its schedulers, links, netfilter for the iptables
// rules kube-proxy's IPVS mode keeps, ipset types, conntrack over netlink.
export const KERNEL_MODULES = [
  'ip_vs',
  'ip_vs_rr',
  'ip_vs_wrr',
  'ip_vs_lc',
  'ip_vs_wlc',
  'ip_vs_sh',
  'ip_vs_dh',
  'ip_vs_sed',
  'ip_vs_nq',
  'ip_vs_mh',
  'ip_vs_lblc',
  'ip_vs_lblcr',
  'ip_vs_fo',
  'ip_vs_ovf',
  'dummy',
  'veth',
  'ipip',
  'ip6_tunnel',
  'iptable_nat',
  'iptable_filter',
  'iptable_mangle',
  'ip6table_nat',
  'ip6table_filter',
  'xt_set',
  'xt_mark',
  'xt_comment',
  'xt_addrtype',
  'xt_MASQUERADE',
  'xt_conntrack',
  'xt_physdev',
  'xt_multiport',
  'ip_set',
  'ip_set_hash_ip',
  'ip_set_hash_ipport',
  'ip_set_hash_ipportip',
  'ip_set_hash_ipportnet',
  'ip_set_hash_net',
  'ip_set_bitmap_port',
  'nf_conntrack_netlink',
  'sch_netem',
];

const PASSED_ENV = ['PATH', 'HOME', 'TERM', 'CI', 'LANG', 'NODE_OPTIONS', 'FORCE_COLOR', 'NO_COLOR'];

function fail(message) {
  console.error(`sandbox: ${message}`);
  process.exit(2);
}

function findUml() {
  for (const path of ['/usr/bin/linux.uml', '/usr/bin/linux']) {
    if (existsSync(path) && existsSync('/usr/lib/uml/modules')) return path;
  }
  return undefined;
}

function runDirect(command) {
  for (const module of KERNEL_MODULES) spawnSync('modprobe', [module], { stdio: 'ignore' });
  const child = spawn(command[0], command.slice(1), { stdio: 'inherit', env: { ...process.env, KIPVS_SANDBOX: 'direct' } });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
}

const shellQuote = (value) => `'${String(value).replaceAll("'", `'\\''`)}'`;

function initScript({ runDir, kernelVersion, command, env }) {
  const modroot = '/tmp/modroot';
  const exports = Object.entries(env)
    .map(([key, value]) => `export ${key}=${shellQuote(value)}`)
    .join('\n');
  return `#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
run=${shellQuote(runDir)}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# The root is the host's filesystem: everything a test creates lives on tmpfs instead.
mount -t tmpfs tmpfs /run
${
  projectRoot.startsWith('/tmp/')
    ? `# The project itself lives under /tmp: carry it over the new /tmp.
mkdir -p /run/kipvs-project
mount --bind ${shellQuote(projectRoot)} /run/kipvs-project
mount -t tmpfs tmpfs /tmp
mkdir -p ${shellQuote(projectRoot)}
mount --bind /run/kipvs-project ${shellQuote(projectRoot)}`
    : 'mount -t tmpfs tmpfs /tmp'
}
mkdir -p /run/netns ${modroot}/lib/modules/${kernelVersion}
mount --bind /usr/lib/uml/modules/${kernelVersion} ${modroot}/lib/modules/${kernelVersion}
export MODPROBE_OPTIONS="-d ${modroot}"
echo "$run/modprobe" > /proc/sys/kernel/modprobe
for module in ${KERNEL_MODULES.join(' ')}; do
  modprobe "$module" 2>>"$run/modprobe.log" || echo "sandbox: module $module did not load" >>"$run/output.log"
done
ip link set lo up
cd ${shellQuote(projectRoot)}
${exports}
export KIPVS_SANDBOX=uml
${command.map(shellQuote).join(' ')} >>"$run/output.log" 2>&1 </dev/null
echo $? > "$run/rc"
sync
poweroff -f
`;
}

async function runUml(umlPath, command) {
  const kernelVersions = readdirSync('/usr/lib/uml/modules');
  if (kernelVersions.length !== 1) fail(`expected one kernel version under /usr/lib/uml/modules, found: ${kernelVersions.join(', ') || 'none'}`);
  const kernelVersion = kernelVersions[0];
  const runDir = join(projectRoot, '.sandbox', `run-${process.pid}`);
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const env = Object.fromEntries(PASSED_ENV.filter((key) => process.env[key] !== undefined).map((key) => [key, process.env[key]]));
  for (const [key, value] of Object.entries(process.env)) if (key.startsWith('KIPVS_') && key !== 'KIPVS_SANDBOX') env[key] = value;
  writeFileSync(join(runDir, 'init.sh'), initScript({ runDir, kernelVersion, command, env }), { mode: 0o755 });
  writeFileSync(join(runDir, 'modprobe'), `#!/bin/sh\nexec /sbin/modprobe -d /tmp/modroot "$@"\n`, { mode: 0o755 });
  writeFileSync(join(runDir, 'output.log'), '');
  chmodSync(join(runDir, 'init.sh'), 0o755);

  const shim = join(projectRoot, 'native-shims', 'build', 'Release', 'uml_xstate_shim.so');
  const childEnv = { ...process.env, TMPDIR: process.env.TMPDIR ?? '/tmp' };
  if (existsSync(shim)) childEnv.LD_PRELOAD = shim;
  else console.error(`sandbox: ${shim} is missing (run npm ci); UML may fail on hosts with a large FPU state`);
  const mem = process.env.KIPVS_SANDBOX_MEM ?? '2G';
  const args = [
    `mem=${mem}`,
    'root=/dev/root',
    'rootfstype=hostfs',
    'rootflags=/',
    'rw',
    'quiet',
    `init=${join(runDir, 'init.sh')}`,
    'con=null',
    'con0=fd:0,fd:1',
  ];
  const consoleFd = openSync(join(runDir, 'console.log'), 'w');
  const started = Date.now();
  const uml = spawn(umlPath, args, { stdio: ['ignore', consoleFd, consoleFd], env: childEnv, detached: true });
  closeSync(consoleFd);

  // Stream the command's output as it is written.
  const outputFd = openSync(join(runDir, 'output.log'), 'r');
  const buffer = Buffer.alloc(65536);
  const pump = () => {
    for (;;) {
      const n = readSync(outputFd, buffer, 0, buffer.length, null);
      if (n <= 0) break;
      process.stdout.write(buffer.subarray(0, n));
    }
  };
  const timer = setInterval(pump, 200);
  // An hour: with other work keeping both cores of a 2-core machine busy, the whole kernel suite
  // ran past 1,500 s (and stopped before the conntrack file).
  // The limit is there to end a hung kernel, not to judge speed; every test has its own deadlines.
  const timeoutSeconds = Number(process.env.KIPVS_SANDBOX_TIMEOUT ?? 3600);
  const killer = setTimeout(() => {
    console.error(`sandbox: no result after ${timeoutSeconds} s; stopping the UML kernel`);
    try {
      process.kill(-uml.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }, timeoutSeconds * 1000);
  // UML runs in a session of its own: whatever ends this runner must end it too.
  const killUml = () => {
    try {
      process.kill(-uml.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  process.on('exit', killUml);
  for (const [signal, number] of [
    ['SIGINT', 2],
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ]) {
    process.on(signal, () => {
      killUml();
      process.exit(128 + number);
    });
  }

  await new Promise((resolveExit) => uml.on('exit', resolveExit));
  clearInterval(timer);
  clearTimeout(killer);
  pump();
  closeSync(outputFd);
  const rcPath = join(runDir, 'rc');
  if (!existsSync(rcPath)) {
    const consoleText = readFileSync(join(runDir, 'console.log'), 'utf8');
    console.error(
      `sandbox: the UML kernel stopped without a result after ${((Date.now() - started) / 1000).toFixed(1)} s. Its console:\n${consoleText.split('\n').slice(-40).join('\n')}`,
    );
    console.error(`sandbox: files kept in ${runDir}`);
    process.exit(2);
  }
  const rc = Number(readFileSync(rcPath, 'utf8').trim());
  console.error(`sandbox: UML ${kernelVersion} run finished in ${((Date.now() - started) / 1000).toFixed(1)} s, exit status ${rc}`);
  rmSync(runDir, { recursive: true, force: true });
  process.exit(Number.isInteger(rc) ? rc : 2);
}

const separator = process.argv.indexOf('--');
const command = separator >= 0 ? process.argv.slice(separator + 1) : [];
if (command.length === 0) fail('usage: node scripts/sandbox.mjs -- <command> [args...]');

const forced = process.env.KIPVS_SANDBOX;
if (forced === 'direct' || (!forced && hostHasIpvs())) {
  if (!hostHasIpvs()) fail('KIPVS_SANDBOX=direct, but this kernel has no IPVS (no /proc/net/ip_vs, modprobe ip_vs failed) or we are not root');
  runDirect(command);
} else {
  const uml = findUml();
  if (!uml) {
    fail(
      'no kernel with IPVS to test against: the host kernel lacks ip_vs (or we are not root), and User-Mode Linux is not installed (apt-get install user-mode-linux). Kernel tests cannot run.',
    );
  }
  if (forced && forced !== 'uml') fail(`KIPVS_SANDBOX must be direct or uml, not ${forced}`);
  await runUml(uml, command);
}
