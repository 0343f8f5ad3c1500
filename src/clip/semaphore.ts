/**
 * A counting semaphore: at most `limit` holders at once; the others wait in arrival order. Used to
 * bound how many images are decoded at once (each is width × height × 3 bytes while it lives).
 */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`semaphore limit ${limit}`);
  }

  /** Holders now, and callers waiting for a turn. */
  get inUse(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `task` when a turn is free; the turn is handed on when it settles. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      // The turn passes straight to the next caller (active stays the same), or is given back.
      if (next) next();
      else this.active--;
    }
  }
}
