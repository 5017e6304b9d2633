// Loads the N-API addon built from native-shims/ by `npm ci`.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KipvsError } from './errors.js';

export interface NativeShims {
  setns(fd: number, nstype: number): void;
  gettid(): number;
  /** glibc's malloc_trim(0): true when it released memory; false elsewhere. */
  mallocTrim(): boolean;
  readonly CLONE_NEWNET: number;
}

let loaded: NativeShims | undefined;

function projectRoot(): string {
  // src/native.ts and dist/native.js both sit one level below the project root.
  return join(dirname(fileURLToPath(import.meta.url)), '..');
}

export function nativeShims(): NativeShims {
  if (loaded) return loaded;
  const path = join(projectRoot(), 'native-shims', 'build', 'Release', 'kipvs_native.node');
  if (!existsSync(path)) {
    throw new KipvsError('KIPVS_NATIVE_MISSING', `the native shims are not built (${path} is missing): run npm ci or npm run install`);
  }
  loaded = createRequire(import.meta.url)(path) as NativeShims;
  return loaded;
}
