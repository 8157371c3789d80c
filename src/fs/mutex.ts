/** A minimal async mutex: run() executes callbacks one at a time, in call order. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private held = 0;

  get locked(): boolean {
    return this.held > 0;
  }

  run<T>(fn: () => Promise<T> | T): Promise<T> {
    this.held++;
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => { this.held--; },
      () => { this.held--; },
    );
    return result;
  }
}
