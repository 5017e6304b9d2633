// CPU profiles of the measured sections (KIPVS_BENCH_PROFILE; summarise: node bench/profile-top.mjs FILE).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { profileDir } from './shared.js';

/** Runs `run` under the CPU profiler when KIPVS_BENCH_PROFILE asks for profiles. */
export async function profiled<T>(name: string, run: () => Promise<T>): Promise<T> {
  if (!profileDir) return run();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await run();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(join(profileDir, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

/** The node flags that make a child process write its own CPU profile. */
export const childProfileArgs = (name: string): string[] =>
  profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `${name}.cpuprofile`] : [];
