/**
 * The contract of a WorkerPool (worker-pool.ts) on the calling thread: requests answered one at a
 * time, in the order they came. For comparison with a thread, or where threads are unwanted.
 */

/** A request in, its answer out: a WorkerPool, or InProcess. */
export interface Runner<Request, Response> {
  run(request: Request, transfer?: ArrayBuffer[]): Promise<Response>;
  close(): Promise<void>;
}

/** Runs each piece of work after the one before it has settled (whether it failed or not). */
export function inOrder(): <T>(work: () => T | Promise<T>) => Promise<T> {
  let previous: Promise<unknown> = Promise.resolve();
  return (work) => {
    const result = previous.then(work);
    previous = result.catch(() => undefined);
    return result;
  };
}

export class InProcess<Request, Response> implements Runner<Request, Response> {
  private readonly next = inOrder();

  constructor(private readonly handler: (request: Request) => Response | Promise<Response>) {}

  run(request: Request): Promise<Response> {
    return this.next(() => this.handler(request));
  }

  async close(): Promise<void> {}
}
