/**
 * The in-process job backend, used when no Redis is configured: a FIFO queue per lane (searches,
 * collection builds) in this process's memory, each worked by its own number of concurrent jobs,
 * so that a build never waits behind searches nor searches behind it. Jobs are lost when the
 * process ends (a collection build resumes from its collection's files: see src/collections/). The
 * most recent `maxJobs` jobs are remembered; older finished ones are forgotten. A stopped job's view
 * is frozen at the stop: the job's later steps and its result are not recorded.
 */
import {
  emptyProgressOf,
  JOB_KINDS,
  kindOf,
  type JobBackend,
  type JobData,
  type JobKind,
  type JobLane,
  type JobOwner,
  type JobProcessor,
  type JobView,
} from './types.js';

interface MemoryJob extends JobView {
  data: JobData;
  cancelRequested: boolean;
  owners: Set<JobOwner>;
}

const laneOf = (data: JobData): JobLane => JOB_KINDS[kindOf(data)].lane;

export class MemoryBackend implements JobBackend {
  readonly kind = 'memory';
  private readonly jobs = new Map<string, MemoryJob>();
  private readonly waiting: MemoryJob[] = [];
  private readonly running = new Map<JobLane, number>();
  private closed = false;
  private readonly idle = new Set<() => void>();

  /**
   * `concurrency`: searches at a time; `laneConcurrency`: jobs at a time of the other lanes
   * (collection builds: 4 unless given).
   */
  constructor(
    private readonly processor: JobProcessor,
    private readonly concurrency = 1,
    private readonly maxJobs = 1000,
    private readonly laneConcurrency: Partial<Record<JobLane, number>> = {},
  ) {}

  private limitOf(lane: JobLane): number {
    if (lane === 'search') return this.laneConcurrency.search ?? this.concurrency;
    return this.laneConcurrency[lane] ?? 4;
  }

  private totalRunning(): number {
    let total = 0;
    for (const count of this.running.values()) total += count;
    return total;
  }

  async add(id: string, data: JobData): Promise<string> {
    const existing = await this.findActive(data.hash, kindOf(data));
    if (existing !== undefined) return existing;
    const job: MemoryJob = {
      id,
      kind: kindOf(data),
      state: 'queued',
      progress: emptyProgressOf(data),
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
    const { id: jobId, kind, state, progress, result, error } = job;
    return structuredClone({
      id: jobId,
      kind,
      state,
      progress,
      result,
      error,
      subscribers: job.owners.size,
    });
  }

  async findActive(hash: string, kind: JobKind = 'max-text'): Promise<string | undefined> {
    for (const job of this.jobs.values()) {
      const active = job.state === 'queued' || job.state === 'running';
      if (active && !job.cancelRequested && job.data.hash === hash && job.kind === kind) return job.id;
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
      if (active && job.owners.has(owner) && laneOf(job.data) === 'search') count++;
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

  /**
   * Refuses new work and waits for running jobs to stop: they are told to hand back (a build
   * leaves its collection to resume at the next start) and to cancel (a search stops).
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) job.state = 'cancelled';
    for (const job of this.jobs.values()) job.cancelRequested = true;
    if (this.totalRunning() > 0) await new Promise<void>((resolve) => this.idle.add(resolve));
  }

  async waitingCount(): Promise<number> {
    return this.waiting.filter((job) => laneOf(job.data) === 'search').length;
  }

  private pump(): void {
    if (this.closed) return;
    for (let i = 0; i < this.waiting.length;) {
      const job = this.waiting[i];
      const lane = laneOf(job.data);
      const running = this.running.get(lane) ?? 0;
      if (running >= this.limitOf(lane)) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      this.running.set(lane, running + 1);
      // Fire-and-forget: run records the job's outcome (its error included) and never rejects.
      void this.run(job, lane);
    }
  }

  private async run(job: MemoryJob, lane: JobLane): Promise<void> {
    job.state = 'running';
    try {
      const outcome = await this.processor(job.data, {
        id: job.id,
        // Once stopped, the view stays as it was at the stop.
        reportProgress: async (progress) => {
          if (!job.cancelRequested) job.progress = structuredClone(progress);
        },
        isCancelled: async () => job.cancelRequested,
        shouldHandBack: () => this.closed,
      });
      if (!job.cancelRequested && !outcome.cancelled) {
        job.result = outcome.result;
        job.state = 'completed';
      } else job.state = 'cancelled';
    } catch (error) {
      job.state = job.cancelRequested ? 'cancelled' : 'failed';
      if (!job.cancelRequested) job.error = error instanceof Error ? error.message : String(error);
    } finally {
      this.running.set(lane, (this.running.get(lane) ?? 1) - 1);
      if (this.totalRunning() === 0) {
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
