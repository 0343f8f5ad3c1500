/**
 * The in-process job backend, used when no Redis is configured: a FIFO queue in this process's
 * memory, worked by `concurrency` concurrent searches. Jobs are lost when the process ends. The
 * most recent `maxJobs` jobs are remembered; older finished ones are forgotten. A stopped job's view
 * is frozen at the stop: the search's later steps and its result are not recorded.
 */
import {
  emptyProgress,
  type JobBackend,
  type JobData,
  type JobOwner,
  type JobProcessor,
  type JobView,
} from './types.js';

interface MemoryJob extends JobView {
  data: JobData;
  cancelRequested: boolean;
  owners: Set<JobOwner>;
}

export class MemoryBackend implements JobBackend {
  readonly kind = 'memory';
  private readonly jobs = new Map<string, MemoryJob>();
  private readonly waiting: MemoryJob[] = [];
  private running = 0;
  private closed = false;
  private readonly idle = new Set<() => void>();

  constructor(
    private readonly processor: JobProcessor,
    private readonly concurrency = 1,
    private readonly maxJobs = 1000,
  ) {}

  async add(id: string, data: JobData): Promise<string> {
    for (const other of this.waiting) if (other.data.hash === data.hash) return other.id;
    for (const other of this.jobs.values()) {
      if (other.state === 'running' && !other.cancelRequested && other.data.hash === data.hash)
        return other.id;
    }
    const job: MemoryJob = {
      id,
      state: 'queued',
      progress: emptyProgress(data.request.steps),
      data,
      cancelRequested: false,
      owners: new Set(),
    };
    this.jobs.set(id, job);
    this.waiting.push(job);
    this.forgetOldJobs();
    this.pump();
    return id;
  }

  async get(id: string): Promise<JobView | undefined> {
    const job = this.jobs.get(id);
    if (!job) return undefined;
    const { id: jobId, state, progress, result, error } = job;
    return structuredClone({ id: jobId, state, progress, result, error, subscribers: job.owners.size });
  }

  async findActive(hash: string): Promise<string | undefined> {
    for (const job of this.jobs.values()) {
      const active = job.state === 'queued' || job.state === 'running';
      if (active && !job.cancelRequested && job.data.hash === hash) return job.id;
    }
    return undefined;
  }

  async subscribe(id: string, owner: JobOwner): Promise<void> {
    this.jobs.get(id)?.owners.add(owner);
  }

  async subscribers(id: string): Promise<JobOwner[]> {
    return [...(this.jobs.get(id)?.owners ?? [])];
  }

  async unsubscribe(id: string, owner: JobOwner): Promise<number> {
    const job = this.jobs.get(id);
    if (!job) return 0;
    job.owners.delete(owner);
    return job.owners.size;
  }

  async activeJobsOf(owner: JobOwner): Promise<number> {
    let count = 0;
    for (const job of this.jobs.values()) {
      const active = (job.state === 'queued' || job.state === 'running') && !job.cancelRequested;
      if (active && job.owners.has(owner)) count++;
    }
    return count;
  }

  async stop(id: string): Promise<void> {
    const job = this.jobs.get(id);
    if (!job || job.state === 'completed' || job.state === 'failed') return;
    job.cancelRequested = true;
    job.state = 'cancelled';
    const index = this.waiting.indexOf(job);
    if (index >= 0) this.waiting.splice(index, 1);
  }

  /** Waits for running searches to stop (they are told to cancel) and refuses new work. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) job.state = 'cancelled';
    for (const job of this.jobs.values()) job.cancelRequested = true;
    if (this.running > 0) await new Promise<void>((resolve) => this.idle.add(resolve));
  }

  async waitingCount(): Promise<number> {
    return this.waiting.length;
  }

  private pump(): void {
    while (!this.closed && this.running < this.concurrency && this.waiting.length > 0) {
      // Fire-and-forget: run records the job's outcome (its error included) and never rejects.
      void this.run(this.waiting.shift()!);
    }
  }

  private async run(job: MemoryJob): Promise<void> {
    this.running += 1;
    job.state = 'running';
    try {
      const outcome = await this.processor(job.data, {
        // Once stopped, the view stays as it was at the stop.
        reportProgress: async (progress) => {
          if (!job.cancelRequested) job.progress = { ...progress };
        },
        isCancelled: async () => job.cancelRequested,
      });
      if (!job.cancelRequested && !outcome.cancelled) {
        job.result = outcome.result;
        job.state = 'completed';
      } else job.state = 'cancelled';
    } catch (error) {
      job.state = job.cancelRequested ? 'cancelled' : 'failed';
      if (!job.cancelRequested) job.error = error instanceof Error ? error.message : String(error);
    } finally {
      this.running -= 1;
      if (this.running === 0) {
        for (const resolve of this.idle) resolve();
        this.idle.clear();
      }
      this.pump();
    }
  }

  private forgetOldJobs(): void {
    for (const [id, job] of this.jobs) {
      if (this.jobs.size <= this.maxJobs) break;
      if (job.state !== 'queued' && job.state !== 'running') this.jobs.delete(id);
    }
  }
}
