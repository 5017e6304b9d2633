// Paced work: what waits for its next slice resumes one piece per turn of the event loop, so that
// what else is due (a sync's timer, a socket's data) runs between any two slices.
import { describe, expect, it } from 'vitest';
import { forEachPaced, nextTurn } from '../../../src/util/event-loop.js';

/** Marks each turn of the event loop ('|') until `done()` says to stop. */
function markTurns(order: string[]): { done(): void } {
  let running = true;
  const mark = (): void => {
    order.push('|');
    if (running) setImmediate(mark);
  };
  setImmediate(mark);
  return { done: () => void (running = false) };
}

describe('nextTurn', () => {
  it('resumes one of several waiting loops per turn of the event loop, in the order they yielded', async () => {
    const order: string[] = [];
    const turns = markTurns(order);
    const loop = async (name: string): Promise<void> => {
      for (let slice = 0; slice < 3; slice++) {
        await nextTurn();
        order.push(`${name}${slice}`);
      }
    };
    await Promise.all([loop('a'), loop('b'), loop('c')]);
    turns.done();
    const resumed = order.filter((entry) => entry !== '|');
    expect(resumed).toEqual(['a0', 'b0', 'c0', 'a1', 'b1', 'c1', 'a2', 'b2', 'c2']);
    // Never two slices in one turn: a turn's mark lies between any two resumptions.
    const firstResumption = order.findIndex((entry) => entry !== '|');
    const lastResumption = order.findLastIndex((entry) => entry !== '|');
    const adjacent = order.slice(firstResumption, lastResumption).filter((entry, i, run) => entry !== '|' && run[i + 1] !== '|');
    expect(adjacent).toEqual([]);
  });

  it('lets paced loops finish every step, whatever the pace', async () => {
    const seen: number[] = [];
    let calls = 0;
    await forEachPaced(
      [1, 2, 3, 4, 5],
      () => (++calls % 2 === 0 ? nextTurn() : undefined),
      (item) => seen.push(item),
    );
    expect(seen).toEqual([1, 2, 3, 4, 5]);
  });
});
