// How the image runs node (deploy/Dockerfile): the benchmarks run the daemon the same way.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The image's NODE_OPTIONS (its `ENV NODE_OPTIONS=` line). */
export const IMAGE_NODE_OPTIONS = /^ENV NODE_OPTIONS=(.*)$/m.exec(readFileSync(join(import.meta.dirname, '..', 'deploy', 'Dockerfile'), 'utf8'))?.[1] ?? '';
