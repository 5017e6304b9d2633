// Condition waits with generous deadlines (scripts/lab/wait.ts), for every kernel test.
export { GENEROUS_MS, sleep, waitUntil } from '../../../scripts/lab/wait.js';
