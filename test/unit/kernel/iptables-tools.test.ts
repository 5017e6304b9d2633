// Several read-only tools in one shell (the iptables backend detection's survey): each command's
// status, stdout and stderr must come back exactly as if it had been run alone.
import { describe, expect, it } from 'vitest';
import { runToolsInOneShell } from '../../../src/kernel/iptables.js';

describe('runToolsInOneShell', () => {
  it("returns each command's status, stdout (byte for byte) and stderr (less its trailing newlines), in order", async () => {
    const results = await runToolsInOneShell(
      [['printf', 'a\nb\n'], ['printf', 'no newline at the end'], ['sh', '-c', 'echo out; echo err >&2; exit 3'], ['true'], ['printf', '\n\n']],
      {},
    );
    expect(results).toEqual([
      { status: 0, stdout: 'a\nb\n', stderr: '' },
      { status: 0, stdout: 'no newline at the end', stderr: '' },
      { status: 3, stdout: 'out\n', stderr: 'err' },
      { status: 0, stdout: '', stderr: '' },
      { status: 0, stdout: '\n\n', stderr: '' },
    ]);
  });

  it('passes words as arguments, never as shell text, and reports a missing tool as status 127', async () => {
    const hostile = '"; echo injected; $(echo x) `echo y` ${1} \'';
    const [echoed, missing] = await runToolsInOneShell([['printf', '%s', hostile], ['kipvs-no-such-tool-here']], {});
    expect(echoed).toEqual({ status: 0, stdout: hostile, stderr: '' });
    expect(missing?.status).toBe(127);
    expect(missing?.stdout).toBe('');
    expect(missing?.stderr).toMatch(/not found/);
  });

  it('passes more than nine words (positional parameters past $9)', async () => {
    const words = Array.from({ length: 12 }, (_, i) => `w${i}`);
    const [result] = await runToolsInOneShell([['printf', '%s,', ...words]], {});
    expect(result?.stdout).toBe(`${words.join(',')},`);
  });
});
