// The kipvs command line: one line for a user error, never a stack trace (KIPVS_DEBUG=1 shows it).
import { Command, CommanderError } from 'commander';
import { KipvsError } from '../errors.js';
import { inspectCommand } from './inspect.js';
import { agentCommand } from './agent.js';
import type { CleanupOptions } from './cleanup.js';

export function buildProgram(): Command {
  const program = new Command();
  program.name('kipvs').description('Kubernetes service proxy on IPVS, programmed over netlink').showHelpAfterError().exitOverride();
  program.addCommand(agentCommand());
  program.addCommand(inspectCommand());
  program.addCommand(cleanupCommand());
  return program;
}

/** Its work is loaded only when it runs: each module a process loads costs start-up time. */
function cleanupCommand(): Command {
  return new Command('cleanup')
    .description('remove every kernel object kipvs owns (virtual servers, dummy interface, ipsets) and nothing else')
    .option('--netns <name|path>', 'clean this network namespace')
    .action(async (options: CleanupOptions) => {
      const { cleanupAndReport } = await import('./cleanup.js');
      await cleanupAndReport(options);
    });
}

export function describeError(error: unknown): string {
  if (error instanceof KipvsError) return error.message;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

export async function runCli(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode; // commander already printed it
    console.error(`kipvs: ${describeError(error)}`);
    if (process.env.KIPVS_DEBUG && error instanceof Error) console.error(error.stack);
    return error instanceof KipvsError ? 1 : 70;
  }
}
