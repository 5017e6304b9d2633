/** Lets the event loop run what is due (a timer, a socket's data) before long work goes on. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
