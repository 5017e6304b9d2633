// The namespace cluster lives with the demo's lab (scripts/lab/), which the kernel tests share.
export { createTopology, type Topology } from '../../../scripts/lab/topology.js';
