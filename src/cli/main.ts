#!/usr/bin/env node
import { runCli } from './program.js';

process.exitCode = await runCli(process.argv.slice(2));
// The command is done: whatever is still open (a kept-alive connection, a request of an exec
// credential plugin) must not keep the process alive.
setTimeout(() => process.exit(), 2000).unref();
