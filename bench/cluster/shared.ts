// What every part of the cluster benchmark uses: the agent's settings, the paths, the log line.
import { join, resolve } from 'node:path';
import { DEFAULT_SETTINGS } from '../../src/model/settings.js';

export const root = resolve(import.meta.dirname, '..', '..');
export const SETTINGS = DEFAULT_SETTINGS;
export const DUMMY = SETTINGS.dummyInterface;
export const CLI = join(root, 'dist', 'cli', 'main.js');
/** Where CPU profiles go (KIPVS_BENCH_PROFILE), if anywhere. */
export const profileDir = process.env.KIPVS_BENCH_PROFILE ? resolve(root, process.env.KIPVS_BENCH_PROFILE) : undefined;

const benchStarted = performance.now();
export const log = (text: string): void => void process.stderr.write(`bench [${((performance.now() - benchStarted) / 1000).toFixed(0)} s]: ${text}\n`);
export const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));
