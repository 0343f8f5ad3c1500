/**
 * The processors of every job kind, registered by the part of the service that owns the kind (the
 * jobs plugin registers searches, the collections plugin builds and their shards; src/bin/worker.ts
 * registers the same), and one processor that dispatches a job to its kind's. A job of a kind that
 * this process has not registered fails with a message that names it.
 */
import { kindOf, type JobKind, type JobProcessor, type KindProcessor } from './types.js';

export class JobRegistry {
  private readonly processors = new Map<JobKind, KindProcessor<JobKind>>();

  register<K extends JobKind>(kind: K, processor: KindProcessor<K>): void {
    this.processors.set(kind, processor as unknown as KindProcessor<JobKind>);
  }

  has(kind: JobKind): boolean {
    return this.processors.has(kind);
  }

  /** Runs a job with its kind's processor. */
  readonly dispatch: JobProcessor = (data, context) => {
    const kind = kindOf(data);
    const processor = this.processors.get(kind);
    if (!processor) return Promise.reject(new Error(`this process does not run jobs of kind ${kind}`));
    return processor(data as never, context as never);
  };
}
