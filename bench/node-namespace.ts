// The node of a benchmark run in the sandbox kernel: a network namespace with the node's address
// (bench/workload.ts) on a dummy link, removed with what kipvs made in it.
import { spawnSync } from 'node:child_process';
import { NODE_ADDRESS, NODE_ADDRESS_PREFIX } from './workload.js';

export interface NodeNamespace {
  readonly netns: string;
  readonly remove: () => void;
}

export function makeNodeNamespace(prefix: string): NodeNamespace {
  const netns = `${prefix}-${process.pid}`;
  const ip = (...args: string[]): void => void spawnSync('ip', ['-n', netns, ...args], { stdio: 'inherit' });
  spawnSync('ip', ['netns', 'add', netns], { stdio: 'inherit' });
  ip('link', 'set', 'lo', 'up');
  ip('link', 'add', 'eth0', 'type', 'dummy');
  ip('address', 'add', `${NODE_ADDRESS}/${NODE_ADDRESS_PREFIX}`, 'dev', 'eth0');
  ip('link', 'set', 'eth0', 'up');
  return {
    netns,
    remove: () => {
      spawnSync('ip', ['netns', 'exec', netns, 'ipvsadm', '-C'], { stdio: 'ignore' });
      spawnSync('ip', ['netns', 'delete', netns], { stdio: 'ignore' });
    },
  };
}
