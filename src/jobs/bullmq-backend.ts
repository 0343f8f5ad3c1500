/**
 * The BullMQ job backend, used when Redis is configured. Jobs live in Redis in a queue named after
 * the model's sha256 (`max-text-<sha>`), so any number of worker processes (`npm run worker`, and
 * the server's in-process worker) share them, and a job outlives the process that took it: when a
 * worker dies, its job lock (held for `lockDuration`, renewed while it runs) expires, BullMQ's
 * stalled-job check in another worker moves the job back to the wait list, and that worker runs it
 * again from the start (searches are deterministic for their seed). A worker that is closed
 * (SIGTERM) does not wait for that: its running searches stop at the next step and their jobs go
 * straight back to the wait list, for another worker to take at once.
 *
 * Cancellation is a flag in Redis (`<prefix>:cancel:<job id>`), which the running worker polls
 * between steps; a cancelled job ends "completed" in BullMQ with `cancelled: true` in its value.
 */
import { Queue, WaitingError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import {
  emptyProgress,
  JobHandedBack,
  type JobBackend,
  type JobData,
  type JobOutcome,
  type JobProcessor,
  type JobView,
} from './types.js';

export const QUEUE_PREFIX = 'mmn-jobs';
const CANCEL_TTL_SECONDS = 7 * 86400;
/** How often a running job reads its cancellation flag at most. */
const CANCEL_POLL_MS = 200;

export function queueName(modelSha256: string): string {
  return `max-text-${modelSha256}`;
}

function cancelKey(name: string, id: string): string {
  return `${QUEUE_PREFIX}:${name}:cancel:${id}`;
}

/** A Redis connection as BullMQ wants it (blocking commands must never give up retrying). */
function connect(redisUrl: string): Redis {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null, enableReadyCheck: true });
  // While Redis is down, ioredis reconnects and reports each failure as an "error" event; the
  // commands that need Redis fail on their own (and jobs wait), so the events need no handling
  // here, only a listener (without one ioredis prints "Unhandled error event" on every retry).
  redis.on('error', () => undefined);
  return redis;
}

export class BullBackend implements JobBackend {
  readonly kind = 'bullmq';
  private readonly redis: Redis;
  private readonly queue: Queue<JobData, JobOutcome>;

  constructor(
    redisUrl: string,
    private readonly name: string,
  ) {
    this.redis = connect(redisUrl);
    this.queue = new Queue<JobData, JobOutcome>(name, { connection: this.redis, prefix: QUEUE_PREFIX });
  }

  async add(id: string, data: JobData): Promise<string> {
    // BullMQ's deduplication: while a job with this request hash is queued or running, adding
    // another is a no-op that returns the first one's id (atomically, in Redis).
    const job = await this.queue.add('max-text', data, {
      jobId: id,
      deduplication: { id: data.hash },
      removeOnComplete: { age: 7 * 86400, count: 10_000 },
      removeOnFail: { age: 7 * 86400, count: 10_000 },
    });
    return job.id ?? id;
  }

  async get(id: string): Promise<JobView | undefined> {
    const job = (await this.queue.getJob(id)) as Job<JobData, JobOutcome> | undefined;
    if (!job) return undefined;
    const [state, cancelled] = await Promise.all([
      job.getState(),
      this.redis.exists(cancelKey(this.name, id)),
    ]);
    if (state === 'unknown') return undefined;
    const progress =
      typeof job.progress === 'object' && job.progress !== null
        ? (job.progress as JobView['progress'])
        : emptyProgress(job.data.request.steps);
    const view: JobView = { id, state: 'queued', progress };
    if (state === 'completed') {
      view.state = job.returnvalue?.cancelled ? 'cancelled' : 'completed';
      view.result = job.returnvalue?.result;
    } else if (state === 'failed') {
      view.state = cancelled ? 'cancelled' : 'failed';
      view.error = job.failedReason;
    } else {
      view.state = cancelled ? 'cancelled' : state === 'active' ? 'running' : 'queued';
    }
    return view;
  }

  async cancel(id: string): Promise<void> {
    await this.redis.set(cancelKey(this.name, id), '1', 'EX', CANCEL_TTL_SECONDS);
    // A new identical request must start a new search, not join the cancelled one.
    const job = await this.queue.getJob(id);
    await job?.removeDeduplicationKey();
  }

  async waitingCount(): Promise<number> {
    return this.queue.getJobCountByTypes('waiting', 'delayed', 'prioritized').catch(() => 0);
  }

  async close(): Promise<void> {
    await this.queue.close();
    await this.redis.quit().catch(() => undefined);
  }
}

export interface BullWorkerOptions {
  redisUrl: string;
  name: string;
  processor: JobProcessor;
  concurrency: number;
  /** How long a job's lock lasts without renewal: how soon a dead worker's job is picked up again. */
  lockDurationMs: number;
  onError?: (error: Error) => void;
}

/** A worker on the queue, with the close that hands its running jobs back. */
export interface BullSearchWorker {
  readonly worker: Worker<JobData, JobOutcome>;
  /** Stops taking jobs; running searches stop at their next step and go back to the wait list. */
  close(): Promise<void>;
}

export function startBullWorker(options: BullWorkerOptions): BullSearchWorker {
  const flags = connect(options.redisUrl);
  const connection = connect(options.redisUrl);
  let handingBack = false;
  const worker = new Worker<JobData, JobOutcome>(
    options.name,
    async (job, token) => {
      const key = cancelKey(options.name, job.id!);
      let checkedAt = 0;
      let cancelled = false;
      try {
        return await options.processor(job.data, {
          reportProgress: (progress) => job.updateProgress({ ...progress }),
          isCancelled: async () => {
            if (!cancelled && Date.now() - checkedAt >= CANCEL_POLL_MS) {
              checkedAt = Date.now();
              cancelled = (await flags.exists(key)) === 1;
            }
            return cancelled;
          },
          shouldHandBack: () => handingBack,
        });
      } catch (error) {
        if (!(error instanceof JobHandedBack) || token === undefined) throw error;
        await job.updateProgress(emptyProgress(job.data.request.steps));
        await job.moveToWait(token);
        throw new WaitingError(); // tells BullMQ the job has been moved, not failed
      }
    },
    {
      connection,
      prefix: QUEUE_PREFIX,
      concurrency: options.concurrency,
      lockDuration: options.lockDurationMs,
      stalledInterval: options.lockDurationMs,
      maxStalledCount: 5,
    },
  );
  worker.on('error', (error) => options.onError?.(error));
  // BullMQ leaves connections it was given open; close them with the worker.
  worker.on('closed', () => {
    for (const client of [flags, connection]) void client.quit().catch(() => undefined);
  });
  return {
    worker,
    close: () => {
      handingBack = true;
      return worker.close();
    },
  };
}
