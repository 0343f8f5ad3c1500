/**
 * The jobs that a kind's processors run in this process, for its shutdown: stop() tells them to
 * hand back (handingBack turns true; each stops at its next step and goes back to the queue, to
 * resume) and resolves once every one has settled. The collection builds and the whole-model
 * labelling (and their shards) run under one each.
 */
import type { JobContext } from './types.js';

export class RunningJobs {
  private stopping = false;
  private readonly active = new Set<Promise<unknown>>();

  /** Counts `work` (a processor's run) among these jobs until it settles; resolves as it does. */
  track<T>(work: Promise<T>): Promise<T> {
    this.active.add(work);
    void work.finally(() => this.active.delete(work)).catch(() => undefined);
    return work;
  }

  /** True once stop() was called, or once the worker that runs the job (its context) shuts down. */
  handingBack(context: Pick<JobContext, 'shouldHandBack'>): boolean {
    return this.stopping || context.shouldHandBack?.() === true;
  }

  /** Tells the jobs to hand back; resolves once every one has settled. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.active]);
  }
}
