// The agent as a child process lives with the demo's lab (scripts/lab/), which the kernel tests share.
export {
  KIPVS_CLI,
  changingSyncLoggedAfter,
  runKipvs,
  startAgent,
  type AgentLogLine,
  type AgentOptions,
  type AgentProcess,
} from '../../../scripts/lab/agent-process.js';
