// The namespaces live with the demo's lab (scripts/lab/), which the kernel tests share.
export { createTestNetns, requireKernelSandbox, type TestNetns } from '../../../scripts/lab/netns.js';
