// Undoing what a beforeAll made (namespaces, clients, servers, directories): each step is added
// right after the thing it undoes exists, so when beforeAll fails midway, afterAll undoes just what
// was made, and never reads a variable that was not assigned.

export class Teardown {
  private readonly steps: (() => unknown)[] = [];

  /** Adds a step; call it right after making what the step undoes. */
  add(step: () => unknown): void {
    this.steps.push(step);
  }

  /** Runs the steps, the last added first, each also when an earlier one failed; then throws what failed. */
  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${String(errors.length)} teardown steps failed`);
  }
}
