/** Bytes from a commented hex dump: `02 00 # nfgenmsg` -> Buffer. */
export const hex = (dump: string): Buffer =>
  Buffer.from(
    dump
      .split('\n')
      .map((line) => line.replace(/#.*$/, ''))
      .join(' ')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map((byte) => parseInt(byte, 16)),
  );
