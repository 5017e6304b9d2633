// Undoing what a test file made (namespaces, clusters, agents, clients, directories): each step is
// added right after the thing it undoes exists, so when beforeAll fails midway, afterAll undoes
// just what was made, and never reads a variable that was not assigned. The make-and-add methods
// below do both for what most kernel tests make.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KIPVS_CLI, startAgent, type AgentOptions, type AgentProcess } from './agent-process.js';
import { createTestNetns, type TestNetns } from './netns.js';
import { createTopology, type Topology } from './topology.js';

export class Teardown {
  private readonly steps: (() => unknown)[] = [];

  /** Adds a step; call it right after making what the step undoes. */
  add(step: () => unknown): void {
    this.steps.push(step);
  }

  /** Runs the steps, the last added first, each also when an earlier one failed; then throws what failed. */
  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${String(errors.length)} teardown steps failed`);
  }

  /** A network namespace (createTestNetns), deleted at teardown. */
  createTestNetns(prefix?: string): TestNetns {
    const ns = createTestNetns(prefix);
    this.add(() => {
      ns.destroy();
    });
    return ns;
  }

  /**
   * A namespace cluster (createTopology), destroyed at teardown; with `kipvsCleanup`, after
   * `kipvs cleanup` in its node namespace (whatever that says: the namespaces go anyway).
   */
  createTopology(podCount: number, options: { readonly ipv6?: boolean; readonly kipvsCleanup?: boolean } = {}): Topology {
    const topology = createTopology(podCount, options.ipv6 ? { ipv6: true } : {});
    this.add(() => {
      if (options.kipvsCleanup) spawnSync(process.execPath, [KIPVS_CLI, 'cleanup', '--netns', topology.node.name]);
      topology.destroy();
    });
    return topology;
  }

  /** A new directory under the system's temporary one (mkdtemp), removed with its files at teardown. */
  makeTempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.add(() => {
      rmSync(dir, { recursive: true, force: true });
    });
    return dir;
  }

  /** `kipvs agent` for the node namespace `node`, with `args` (startAgent), killed at teardown if it still runs. */
  startAgent(node: Pick<TestNetns, 'name'>, args: readonly string[], options?: AgentOptions): AgentProcess {
    const agent = startAgent(node, args, options);
    this.add(() => agent.stop('SIGKILL'));
    return agent;
  }
}
