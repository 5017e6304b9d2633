import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        // vitest's 5 s default is a deadline a property test of a few hundred runs passes on a
        // quiet machine and misses on a busy one: a deadline for a hung test, not for a slow one.
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 60_000 },
      },
      {
        test: {
          name: 'kernel',
          include: ['test/kernel/**/*.test.ts'],
          // Kernel tests share one kernel: run files one after another.
          fileParallelism: false,
          // Deadlines for a hung test, not for a slow one: on a busy 2-core machine building a
          // namespace cluster alone took over 90 s. The waits inside tests have their own deadlines.
          testTimeout: 600_000,
          hookTimeout: 600_000,
        },
      },
      {
        // Shorter cases of `npm run soak` (restarts under traffic, a kill mid-sync), run by npm test
        // beside the kernel tests (scripts/kernel-tests.mjs); see docs/reliability.md.
        test: { name: 'soak', include: ['test/soak/**/*.test.ts'], fileParallelism: false, testTimeout: 1_200_000, hookTimeout: 600_000 },
      },
      {
        // Kernel tests that do not pass yet, kept in test/pending until they do (the docs say
        // which and why): run with `npm run test:pending`, not part of npm test. None at present:
        // the script passes with no files.
        test: { name: 'pending', include: ['test/pending/**/*.test.ts'], fileParallelism: false, testTimeout: 600_000, hookTimeout: 600_000 },
      },
    ],
  },
});
