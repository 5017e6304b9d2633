// Builds the native shims from source with node-gyp against the headers of the running Node, so a
// fresh machine (and the Docker image) builds offline: node-gyp never downloads headers here.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nodeDir = dirname(dirname(process.execPath));
if (!existsSync(join(nodeDir, 'include', 'node', 'node_api.h'))) {
  console.error(`kipvs: Node's headers are not under ${nodeDir}/include/node; install the package that provides them (Debian: nodejs-dev or libnode-dev)`);
  process.exit(1);
}
const candidates = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter((path) => path && existsSync(path));
if (candidates.length === 0) {
  console.error('kipvs: node-gyp not found (it ships with npm); set npm_config_node_gyp to its node-gyp.js');
  process.exit(1);
}
const result = spawnSync(process.execPath, [candidates[0], 'rebuild', `--nodedir=${nodeDir}`], {
  cwd: here,
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
