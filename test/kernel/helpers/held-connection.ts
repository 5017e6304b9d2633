// The held connection lives with the demo's lab (scripts/lab/), which the kernel tests and the soak share.
export { openHeld, type HeldConnection } from '../../../scripts/lab/held-connection.js';
