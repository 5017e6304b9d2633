// Steady traffic from a client namespace lives with the demo's lab (scripts/lab/), which the kernel tests and the soak share.
export { startSteadyClient, type SteadyClient, type TargetTally } from '../../../scripts/lab/steady-client.js';
