// 1. Cold sync: programming a node from empty, kipvs against the C tools (bench/c-tools.ts).
import { spawnSync } from 'node:child_process';
import { release } from 'node:os';
import { ipvsSysctls } from '../../src/kernel/sysctl.js';
import { buildIptablesRules, iptablesRestoreInput } from '../../src/translate/iptables-rules.js';
import { translate } from '../../src/translate/translate.js';
import { countDifferences, desiredCounts, kernelState, programWithCTools, toolInputs, type KernelState, type ToolRun } from '../c-tools.js';
import { IMAGE_NODE_OPTIONS } from '../image.js';
import { expectedCounts, NODE, NODE_NAME, type Workload } from '../workload.js';
import { closeAgent, openAgent, type InProcessAgent } from './in-process-agent.js';
import { freshNamespace, retireNamespace } from './namespaces.js';
import { childProfileArgs, profiled } from './profile.js';
import type { ColdRound, Results } from './results.js';
import { CLI, DUMMY, log, SETTINGS } from './shared.js';

const COLD_ROUNDS = Number(process.env.KIPVS_BENCH_ROUNDS ?? 1);

function verify(results: Results, what: string, netns: string, expected: ReturnType<typeof desiredCounts>): KernelState {
  const state = kernelState(netns, DUMMY);
  const differences = countDifferences(expected, state);
  if (differences.length > 0) results.problems.push(`${what}: the kernel does not hold the desired state: ${differences.join('; ')}`);
  return state;
}

/**
 * The cold syncs at one size, each from empty in a namespace of its own: the C tools, `kipvs agent
 * --once` as a process, and the in-process sync, whose agent is returned open for the next
 * measurements. `order` alternates which goes first.
 */
export async function coldSyncs(results: Results, size: number, workload: Workload, sourceDir: string, order: number): Promise<InProcessAgent> {
  const desired = translate(workload, NODE, SETTINGS);
  const expected = expectedCounts(size);
  const translated = desiredCounts(desired, 0);
  if (
    translated.virtualServers !== expected.virtualServers ||
    translated.realServers !== expected.realServers ||
    translated.boundAddresses !== expected.boundAddresses ||
    translated.ipsetEntries.get('KUBE-LOOP-BACK') !== expected.loopBackEntries
  ) {
    throw new Error(
      `bench: N=${size}: the translation does not match the workload: ${JSON.stringify({ expected, translated: { ...translated, ipsetEntries: Object.fromEntries(translated.ipsetEntries) } })}`,
    );
  }
  const ruleset = buildIptablesRules(SETTINGS, { family: 'inet' });
  const ruleCount = ruleset.rules.nat.length + ruleset.rules.filter.length + ruleset.jumps.length;
  const sysctls = ipvsSysctls({ kernelRelease: release() }).desired.map(({ name, value }) => `${name}=${value}`);
  const inputs = toolInputs(desired, DUMMY, iptablesRestoreInput(ruleset), sysctls);
  const withRules = desiredCounts(desired, ruleCount);
  const withoutRules = desiredCounts(desired, 0);

  const rounds: ColdRound[] = [];
  let inProcessOperations = 0;
  let agent: InProcessAgent | undefined;
  const fingerprints: string[] = [];
  for (let round = 0; round < COLD_ROUNDS; round++) {
    const tag = `${size}-r${round + 1}`;
    let cTools: ToolRun[] = [];
    let agentProcessMs = 0;
    let agentDefaultsMs = 0;
    let inProcessMs = 0;
    const steps = {
      c: async () => {
        const netns = freshNamespace();
        cTools = programWithCTools(netns, inputs);
        fingerprints.push(verify(results, `N=${size} C tools`, netns, withRules).fingerprint);
        await retireNamespace(netns);
        log(`N=${size} round ${round + 1} C tools: ${cTools.map((run) => `${run.tool} ${run.ms.toFixed(0)} ms`).join(', ')}`);
      },
      process: async () => {
        // As the image runs it (its NODE_OPTIONS), and with node's defaults (kipvs from npm),
        // in alternating order.
        const runs = round % 2 === 0 ? (['image', 'defaults'] as const) : (['defaults', 'image'] as const);
        for (const how of runs) {
          const netns = freshNamespace();
          const args = [
            ...childProfileArgs(`agent-once-${how}-${tag}`),
            CLI,
            'agent',
            '--once',
            '--source',
            sourceDir,
            '--netns',
            netns,
            '--hostname-override',
            NODE_NAME,
          ];
          const env = { ...process.env, NODE_OPTIONS: how === 'image' ? IMAGE_NODE_OPTIONS : '' };
          const started = performance.now();
          const run = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 28, env });
          const elapsed = performance.now() - started;
          if (how === 'image') agentProcessMs = elapsed;
          else agentDefaultsMs = elapsed;
          if (run.status !== 0) throw new Error(`kipvs agent --once (N=${size}, ${how}) exited ${run.status}: ${run.stderr.split('\n').slice(-5).join('\n')}`);
          fingerprints.push(verify(results, `N=${size} kipvs agent --once (${how})`, netns, withRules).fingerprint);
          await retireNamespace(netns);
          log(
            `N=${size} round ${round + 1} kipvs agent --once (${how === 'image' ? "the image's NODE_OPTIONS" : "node's defaults"}): ${elapsed.toFixed(0)} ms`,
          );
        }
      },
      inProcess: async () => {
        // The agent of the last round stays open for the change measurements.
        if (agent) await closeAgent(agent);
        const netns = freshNamespace();
        const opened = (agent = await openAgent(netns));
        const { result, ms } = await profiled(`cold-in-process-${tag}`, async () => {
          const started = performance.now();
          opened.store.replaceAll(workload.services, workload.endpointSlices);
          const synced = await opened.proxier.sync({ full: true });
          return { result: synced, ms: performance.now() - started };
        });
        inProcessMs = ms;
        inProcessOperations = result.plan.operations.length;
        const [firstFailure] = result.failures;
        if (firstFailure) results.problems.push(`N=${size} in-process sync: ${result.failures.length} operations failed, first: ${firstFailure.error.message}`);
        fingerprints.push(verify(results, `N=${size} in-process sync`, netns, withoutRules).fingerprint);
        log(`N=${size} round ${round + 1} in-process sync: ${inProcessMs.toFixed(0)} ms, ${inProcessOperations} operations`);
      },
    };
    // Alternate which goes first, so that none always meets the freshest kernel.
    for (const step of (order + round) % 2 === 0 ? (['c', 'process', 'inProcess'] as const) : (['inProcess', 'process', 'c'] as const)) await steps[step]();
    rounds.push({ cTools, agentProcessMs, agentDefaultsMs, inProcessMs });
  }
  if (new Set(fingerprints).size !== 1) results.problems.push(`N=${size}: the namespaces hold different objects (fingerprints ${fingerprints.join(', ')})`);
  results.cold.push({ size, rounds, inProcessOperations });
  if (!agent) throw new Error('KIPVS_BENCH_ROUNDS: run at least one round');
  return agent;
}
