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
 * Stopping a job is a flag in Redis (`<prefix>:cancel:<job id>`, holding the job's progress at the
 * stop, which its view shows from then on), which the running worker reads before every step; a
 * stopped job ends "completed" in BullMQ with `cancelled: true` and no result. Subscribers (the
 * clients that submitted the job) are a set per job, `<prefix>:subs:<job id>`, and each owner's jobs
 * a set, `<prefix>:owner:<owner>`, pruned of finished jobs when counted.
 *
 * Fail fast: the queue's connection has no offline queue and a short command timeout, and every
 * call first checks that the connection is ready, so while Redis is unreachable the job routes
 * answer 503 with Retry-After at once instead of waiting for Redis to come back.
 */
import { Queue, WaitingError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { HttpError, RetryLaterError } from '../errors.js';
import {
  emptyProgress,
  JobHandedBack,
  type JobBackend,
  type JobData,
  type JobOutcome,
  type JobOwner,
  type JobProcessor,
  type JobProgress,
  type JobView,
} from './types.js';

export const QUEUE_PREFIX = 'mmn-jobs';
const CANCEL_TTL_SECONDS = 7 * 86400;
/** How long a command of the HTTP side may wait for Redis before the request gets a 503. */
const COMMAND_TIMEOUT_MS = 2000;
/** Retry-After of the 503 while Redis is unreachable. */
export const REDIS_DOWN_RETRY_AFTER_S = 5;

export function queueName(modelSha256: string): string {
  return `max-text-${modelSha256}`;
}

function cancelKey(name: string, id: string): string {
  return `${QUEUE_PREFIX}:${name}:cancel:${id}`;
}

function subscribersKey(name: string, id: string): string {
  return `${QUEUE_PREFIX}:${name}:subs:${id}`;
}

function ownerKey(name: string, owner: JobOwner): string {
  return `${QUEUE_PREFIX}:${name}:owner:${owner}`;
}

/** The HTTP side's connection: no offline queue, a short command timeout (see the header). */
function connectFailFast(redisUrl: string): Redis {
  const redis = new Redis(redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: COMMAND_TIMEOUT_MS,
    enableReadyCheck: true,
  });
  redis.on('error', () => undefined); // see connect()
  return redis;
}

export class JobStoreUnavailable extends RetryLaterError {
  constructor() {
    super(503, 'the job store (Redis) is unreachable; retry later', REDIS_DOWN_RETRY_AFTER_S);
    this.name = 'JobStoreUnavailable';
  }
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
  private connectedOnce = false;

  constructor(
    redisUrl: string,
    private readonly name: string,
  ) {
    this.redis = connectFailFast(redisUrl);
    this.queue = new Queue<JobData, JobOutcome>(name, { connection: this.redis, prefix: QUEUE_PREFIX });
    this.queue.on('error', () => undefined); // reported by the routes' 503s
    this.redis.once('ready', () => (this.connectedOnce = true));
  }

  /** Runs a Redis call, or answers 503 at once while Redis is unreachable (any failure of it, too). */
  private async guard<T>(call: () => Promise<T>): Promise<T> {
    if (this.redis.status !== 'ready' && !(await this.firstConnection())) throw new JobStoreUnavailable();
    try {
      return await call();
    } catch (error) {
      if (error instanceof HttpError) throw error;
      throw new JobStoreUnavailable();
    }
  }

  /**
   * Before the first connection is made (a server just started), a call waits for it, for the
   * command timeout at most; once Redis has been reached, an unready connection is an outage.
   */
  private firstConnection(): Promise<boolean> {
    if (this.connectedOnce) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ready: boolean) => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        resolve(ready);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), COMMAND_TIMEOUT_MS);
      this.redis.on('ready', onReady);
    });
  }

  add(id: string, data: JobData): Promise<string> {
    return this.guard(async () => {
      // BullMQ's deduplication: while a job with this request hash is queued or running, adding
      // another is a no-op that returns the first one's id (atomically, in Redis).
      const job = await this.queue.add('max-text', data, {
        jobId: id,
        deduplication: { id: data.hash },
        removeOnComplete: { age: 7 * 86400, count: 10_000 },
        removeOnFail: { age: 7 * 86400, count: 10_000 },
      });
      return job.id ?? id;
    });
  }

  get(id: string): Promise<JobView | undefined> {
    return this.guard(() => this.view(id));
  }

  private async view(id: string): Promise<JobView | undefined> {
    const job = (await this.queue.getJob(id)) as Job<JobData, JobOutcome> | undefined;
    if (!job) {
      // A job stopped while it waited is removed from the queue; its flag keeps its view.
      const [stopped, subscribers] = await Promise.all([
        this.redis.get(cancelKey(this.name, id)),
        this.redis.scard(subscribersKey(this.name, id)),
      ]);
      const progress = stopped === null ? undefined : parseProgress(stopped);
      return progress ? { id, state: 'cancelled', progress, subscribers } : undefined;
    }
    const [state, stopped, subscribers] = await Promise.all([
      job.getState(),
      this.redis.get(cancelKey(this.name, id)),
      this.redis.scard(subscribersKey(this.name, id)),
    ]);
    if (state === 'unknown') return undefined;
    const progress =
      typeof job.progress === 'object' && job.progress !== null
        ? (job.progress as JobView['progress'])
        : emptyProgress(job.data.request.steps);
    const view: JobView = { id, state: 'queued', progress, subscribers };
    if (stopped !== null) {
      // Stopped: frozen at the stop (its progress then), whatever the worker did after.
      view.state = 'cancelled';
      const snapshot = parseProgress(stopped);
      if (snapshot) view.progress = snapshot;
    } else if (state === 'completed') {
      view.state = job.returnvalue?.cancelled ? 'cancelled' : 'completed';
      if (!job.returnvalue?.cancelled) view.result = job.returnvalue?.result;
    } else if (state === 'failed') {
      view.state = 'failed';
      view.error = job.failedReason;
    } else {
      view.state = state === 'active' ? 'running' : 'queued';
    }
    return view;
  }

  findActive(hash: string): Promise<string | undefined> {
    return this.guard(async () => {
      const id = await this.queue.getDeduplicationJobId(hash);
      if (!id) return undefined;
      const view = await this.view(id);
      return view && (view.state === 'queued' || view.state === 'running') ? id : undefined;
    });
  }

  subscribe(id: string, owner: JobOwner): Promise<void> {
    return this.guard(async () => {
      await this.redis
        .multi()
        .sadd(subscribersKey(this.name, id), owner)
        .expire(subscribersKey(this.name, id), CANCEL_TTL_SECONDS)
        .sadd(ownerKey(this.name, owner), id)
        .expire(ownerKey(this.name, owner), CANCEL_TTL_SECONDS)
        .exec();
    });
  }

  subscribers(id: string): Promise<JobOwner[]> {
    return this.guard(() => this.redis.smembers(subscribersKey(this.name, id)));
  }

  unsubscribe(id: string, owner: JobOwner): Promise<number> {
    return this.guard(async () => {
      const replies = await this.redis
        .multi()
        .srem(subscribersKey(this.name, id), owner)
        .srem(ownerKey(this.name, owner), id)
        .scard(subscribersKey(this.name, id))
        .exec();
      return Number(replies?.[2]?.[1] ?? 0);
    });
  }

  activeJobsOf(owner: JobOwner): Promise<number> {
    return this.guard(async () => {
      const key = ownerKey(this.name, owner);
      const ids = await this.redis.smembers(key);
      const views = await Promise.all(ids.map((id) => this.view(id)));
      const done = ids.filter((_, i) => {
        const state = views[i]?.state;
        return state !== 'queued' && state !== 'running';
      });
      if (done.length > 0) await this.redis.srem(key, ...done);
      return ids.length - done.length;
    });
  }

  stop(id: string): Promise<void> {
    return this.guard(async () => {
      const job = await this.queue.getJob(id);
      const progress =
        typeof job?.progress === 'object' && job.progress !== null
          ? job.progress
          : emptyProgress(job?.data.request.steps ?? 0);
      await this.redis.set(cancelKey(this.name, id), JSON.stringify(progress), 'EX', CANCEL_TTL_SECONDS);
      // A new identical request must start a new search, not join the stopped one.
      await job?.removeDeduplicationKey();
      // A waiting job leaves the queue (and stops counting against JOBS_MAX_QUEUED); one a worker
      // has just taken is locked and stays, and its worker reads the flag before its first step.
      if (job && ['waiting', 'prioritized', 'delayed'].includes(await job.getState())) {
        await job.remove().catch(() => undefined);
      }
    });
  }

  async waitingCount(): Promise<number> {
    if (this.redis.status !== 'ready') return 0;
    return this.queue.getJobCountByTypes('waiting', 'delayed', 'prioritized').catch(() => 0);
  }

  /** Jobs waiting, for the queue limit: 503 while Redis is unreachable. */
  queuedCount(): Promise<number> {
    return this.guard(() => this.queue.getJobCountByTypes('waiting', 'delayed', 'prioritized'));
  }

  async close(): Promise<void> {
    await settleUnready(this.redis, this.queue);
    await this.queue.close().catch(() => undefined);
    this.redis.disconnect();
  }
}

function reportedProgress(progress: unknown): JobProgress | undefined {
  return typeof progress === 'object' && progress !== null && 'steps' in progress
    ? (progress as JobProgress)
    : undefined;
}

function parseProgress(text: string): JobProgress | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null && 'steps' in value
      ? (value as JobProgress)
      : undefined;
  } catch {
    return undefined; // an old flag ("1")
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
  /** The BullMQ worker, once Redis has answered (it is made then: see startBullWorker). */
  readonly started: Promise<Worker<JobData, JobOutcome>>;
  /** Stops taking jobs; running searches stop at their next step and go back to the wait list. */
  close(): Promise<void>;
}

export function startBullWorker(options: BullWorkerOptions): BullSearchWorker {
  const flags = connect(options.redisUrl);
  const connection = connect(options.redisUrl);
  let handingBack = false;
  let closed = false;
  let worker: Worker<JobData, JobOutcome> | undefined;
  let announce: (worker: Worker<JobData, JobOutcome>) => void = () => undefined;
  const started = new Promise<Worker<JobData, JobOutcome>>((resolve) => (announce = resolve));
  const start = () => {
    if (closed) return;
    worker = createWorker();
    worker.on('error', (error) => options.onError?.(error));
    announce(worker);
  };
  const createWorker = () =>
    new Worker<JobData, JobOutcome>(
      options.name,
      async (job, token) => {
        const key = cancelKey(options.name, job.id!);
        let cancelled = false;
        try {
          return await options.processor(job.data, {
            // Nothing is reported once the job is stopped (its view is frozen at the stop anyway).
            reportProgress: async (progress) => {
              if (!cancelled) await job.updateProgress({ ...progress });
            },
            // Read before every step, so that a stopped search takes no step after the stop is
            // acknowledged (one EXISTS per step: a step is a batched text-encoder run).
            isCancelled: async () => {
              if (!cancelled) cancelled = (await flags.exists(key)) === 1;
              return cancelled;
            },
            shouldHandBack: () => handingBack,
            // Taken over (a dead worker's stalled job, or one handed back): go on from its last state.
            resumeFrom: reportedProgress(job.progress),
          });
        } catch (error) {
          if (!(error instanceof JobHandedBack) || token === undefined) throw error;
          // Its progress stays: the worker that takes it goes on from there.
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
  // The worker is made once Redis has answered (there is nothing to work on before): a close that
  // overtakes a BullMQ worker's initialisation fails it with no listener left, an unhandled rejection.
  if (connection.status === 'ready') start();
  else connection.once('ready', start);
  const quitAll = () => {
    for (const client of [flags, connection]) void client.quit().catch(() => client.disconnect());
  };
  return {
    started,
    close: async () => {
      closed = true;
      handingBack = true;
      connection.off('ready', start);
      if (!worker) return quitAll();
      await worker.close();
      // BullMQ leaves connections it was given open; they close with the worker.
      quitAll();
    },
  };
}

/**
 * Before a queue on a connection of ours closes: a connection that never became ready is ended
 * first, and the queue's initialisation allowed to fail while it still listens for the error.
 * BullMQ leaves a shared connection open on close and drops its listeners; ending the connection
 * afterwards failed that initialisation with no listener left, an unhandled rejection (seen with
 * Redis unreachable from start, as in the tests of a Redis outage).
 */
async function settleUnready(redis: Redis, owner: { waitUntilReady(): Promise<unknown> }): Promise<void> {
  if (redis.status === 'ready') return;
  redis.disconnect();
  // A second at most (the initialisation fails as soon as it sees the connection end).
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    owner.waitUntilReady().catch(() => undefined),
    new Promise((resolve) => (timer = setTimeout(resolve, SETTLE_MS))),
  ]);
  clearTimeout(timer);
}

const SETTLE_MS = 1000;
