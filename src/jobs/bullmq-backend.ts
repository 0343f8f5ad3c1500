/**
 * The BullMQ job backend, used when Redis is configured. Jobs live in Redis in one queue per lane
 * (see JOB_KINDS), named after the model's sha256: searches in `max-text-<sha>`, collection builds
 * and their shards in `collections-<sha>` (a build queues its shards there with context.spawn, so
 * that every worker takes them). Any number of worker processes (`npm run worker`, and
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
  emptyProgressOf,
  JOB_KINDS,
  JobHandedBack,
  kindOf,
  laneOfId,
  type JobBackend,
  type JobData,
  type JobKind,
  type JobLane,
  type JobOutcome,
  type JobOwner,
  type JobProcessor,
  type JobProgress,
  type JobView,
  type SpawnedJob,
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

/** The queue of every lane (see JOB_KINDS): searches, and collection builds with their shards. */
export function queueNames(modelSha256: string): Record<JobLane, string> {
  return { search: queueName(modelSha256), collections: `collections-${modelSha256}` };
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

interface Lane {
  name: string;
  queue: Queue<JobData, JobOutcome>;
}

export class BullBackend implements JobBackend {
  readonly kind = 'bullmq';
  private readonly redis: Redis;
  private readonly lanes = new Map<JobLane, Lane>();
  private connectedOnce = false;

  /** `name`: the search queue; `lanes`: the queues of the other lanes (each in JOB_KINDS). */
  constructor(redisUrl: string, name: string, lanes: Partial<Record<JobLane, string>> = {}) {
    this.redis = connectFailFast(redisUrl);
    for (const [lane, laneName] of Object.entries({ ...lanes, search: name }) as [JobLane, string][]) {
      const queue = new Queue<JobData, JobOutcome>(laneName, {
        connection: this.redis,
        prefix: QUEUE_PREFIX,
      });
      queue.on('error', () => undefined); // reported by the routes' 503s
      this.lanes.set(lane, { name: laneName, queue });
    }
    this.redis.once('ready', () => (this.connectedOnce = true));
  }

  /** The pending wait for the first connection, while calls are waiting for it (firstConnection). */
  private firstConnectionWait: Promise<boolean> | undefined;

  /** The lane of a job id, or of a kind. */
  private lane(which: { id: string } | { kind: JobKind }): Lane {
    const lane = 'id' in which ? laneOfId(which.id) : JOB_KINDS[which.kind].lane;
    const found = this.lanes.get(lane);
    if (!found) throw new HttpError(404, `this server has no ${lane} queue`);
    return found;
  }

  /**
   * Runs a Redis call, or answers 503 at once while Redis is unreachable (any failure of it, too).
   * A call whose command timed out while the connection stayed ready is made once more: its timer
   * runs on this process's event loop, and a loop blocked past COMMAND_TIMEOUT_MS (a loaded machine,
   * a module loaded on first use) fails the command before its reply, already there, is read (seen
   * as a 503 among four simultaneous submissions on a loaded machine). The calls may be repeated:
   * reads, and writes that a second time leaves as the first did.
   */
  private async guard<T>(call: () => Promise<T>): Promise<T> {
    if (this.redis.status !== 'ready' && !(await this.firstConnection())) throw new JobStoreUnavailable();
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (error instanceof HttpError) throw error;
        if (attempt === 0 && timedOut(error) && this.redis.status === 'ready') continue;
        throw new JobStoreUnavailable();
      }
    }
  }

  /**
   * Before the first connection is made (a server just started), a call waits for it, for the
   * command timeout at most; once Redis has been reached, an unready connection is an outage.
   */
  private firstConnection(): Promise<boolean> {
    if (this.connectedOnce) return Promise.resolve(false);
    // One wait shared by every call made meanwhile: one 'ready' listener, not one per call.
    return (this.firstConnectionWait ??= new Promise<boolean>((resolve) => {
      const done = (ready: boolean) => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        this.firstConnectionWait = undefined;
        resolve(ready);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), COMMAND_TIMEOUT_MS);
      this.redis.on('ready', onReady);
    }));
  }

  add(id: string, data: JobData): Promise<string> {
    return this.guard(async () => {
      // BullMQ's deduplication: while a job with this request hash is queued or running, adding
      // another is a no-op that returns the first one's id (atomically, in Redis).
      const job = await this.lane({ kind: kindOf(data) }).queue.add(kindOf(data), data, {
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
    const { name, queue } = this.lane({ id });
    const [found, stopped, subscribers] = await Promise.all([
      queue.getJob(id) as Promise<Job<JobData, JobOutcome> | undefined>,
      this.redis.get(cancelKey(name, id)),
      this.redis.scard(subscribersKey(name, id)),
    ]);
    let job = found;
    let state = job ? await job.getState() : undefined;
    // The job's fields and its state are two reads: a job that finished between them read as
    // completed (or failed) with the fields of a running job, without its returnvalue (or
    // failedReason). Its fields are read again then: a finished job's are final (BullMQ writes them
    // in the script that moves it to its finished set).
    if (job && (state === 'completed' || state === 'failed') && !job.finishedOn) {
      job = (await queue.getJob(id)) as Job<JobData, JobOutcome> | undefined;
      state = job ? await job.getState() : undefined;
    }
    if (!job) {
      // A job stopped while it waited is removed from the queue; its flag keeps its view.
      const flag = stopped === null ? undefined : parseFlag(stopped);
      return flag
        ? { id, kind: flag.kind, state: 'cancelled', progress: flag.progress, subscribers }
        : undefined;
    }
    if (state === 'unknown') return undefined;
    const progress =
      typeof job.progress === 'object' && job.progress !== null
        ? (job.progress as JobView['progress'])
        : emptyProgressOf(job.data);
    const view: JobView = { id, kind: kindOf(job.data), state: 'queued', progress, subscribers };
    if (stopped !== null) {
      // Stopped: frozen at the stop (its progress then), whatever the worker did after.
      view.state = 'cancelled';
      const snapshot = parseFlag(stopped);
      if (snapshot) view.progress = snapshot.progress;
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

  findActive(hash: string, kind: JobKind = 'max-text'): Promise<string | undefined> {
    return this.guard(async () => {
      const id = await this.lane({ kind }).queue.getDeduplicationJobId(hash);
      if (!id) return undefined;
      const view = await this.view(id);
      return view && (view.state === 'queued' || view.state === 'running') ? id : undefined;
    });
  }

  subscribe(id: string, owner: JobOwner): Promise<void> {
    return this.guard(async () => {
      const { name } = this.lane({ id });
      await this.redis
        .multi()
        .sadd(subscribersKey(name, id), owner)
        .expire(subscribersKey(name, id), CANCEL_TTL_SECONDS)
        .sadd(ownerKey(name, owner), id)
        .expire(ownerKey(name, owner), CANCEL_TTL_SECONDS)
        .exec();
    });
  }

  subscribers(id: string): Promise<JobOwner[]> {
    return this.guard(() => this.redis.smembers(subscribersKey(this.lane({ id }).name, id)));
  }

  unsubscribe(id: string, owner: JobOwner): Promise<number> {
    return this.guard(async () => {
      const { name } = this.lane({ id });
      const replies = await this.redis
        .multi()
        .srem(subscribersKey(name, id), owner)
        .srem(ownerKey(name, owner), id)
        .scard(subscribersKey(name, id))
        .exec();
      return Number(replies?.[2]?.[1] ?? 0);
    });
  }

  activeJobsOf(owner: JobOwner): Promise<number> {
    return this.guard(async () => {
      const key = ownerKey(this.lane({ kind: 'max-text' }).name, owner);
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
      const { name, queue } = this.lane({ id });
      const job = (await queue.getJob(id)) as Job<JobData, JobOutcome> | undefined;
      if (!job) return;
      const progress =
        typeof job.progress === 'object' && job.progress !== null ? job.progress : emptyProgressOf(job.data);
      const flag: StopFlag = { kind: kindOf(job.data), progress: progress as JobProgress };
      await this.redis.set(cancelKey(name, id), JSON.stringify(flag), 'EX', CANCEL_TTL_SECONDS);
      // A new identical request must start a new search, not join the stopped one.
      await job.removeDeduplicationKey();
      // A waiting job leaves the queue (and stops counting against JOBS_MAX_QUEUED); one a worker
      // has just taken is locked and stays, and its worker reads the flag before its first step.
      if (['waiting', 'prioritized', 'delayed'].includes(await job.getState())) {
        await job.remove().catch(() => undefined);
      }
    });
  }

  async waitingCount(): Promise<number> {
    if (this.redis.status !== 'ready') return 0;
    const { queue } = this.lane({ kind: 'max-text' });
    return queue.getJobCountByTypes('waiting', 'delayed', 'prioritized').catch(() => 0);
  }

  /** Searches waiting, for the queue limit: 503 while Redis is unreachable. */
  queuedCount(): Promise<number> {
    const { queue } = this.lane({ kind: 'max-text' });
    return this.guard(() => queue.getJobCountByTypes('waiting', 'delayed', 'prioritized'));
  }

  async close(): Promise<void> {
    for (const { queue } of this.lanes.values()) await settleUnready(this.redis, queue);
    for (const { queue } of this.lanes.values()) await queue.close().catch(() => undefined);
    this.redis.disconnect();
  }
}

/** An ioredis command that got no reply within its commandTimeout. */
function timedOut(error: unknown): boolean {
  return error instanceof Error && error.message === 'Command timed out';
}

/** What a stop flag holds: the job's kind and its progress at the stop. */
interface StopFlag {
  kind: JobKind;
  progress: JobProgress;
}

function reportedProgress(progress: unknown): JobProgress | undefined {
  return typeof progress === 'object' && progress !== null && Object.keys(progress).length > 0
    ? (progress as JobProgress)
    : undefined;
}

function parseFlag(text: string): StopFlag | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null) return undefined; // an old flag ("1")
    if ('kind' in value && 'progress' in value) return value as StopFlag;
    // A flag of a search stopped before jobs had kinds: its progress alone.
    return 'steps' in value ? { kind: 'max-text', progress: value as JobProgress } : undefined;
  } catch {
    return undefined;
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
  let spawnQueue: Queue<JobData, JobOutcome> | undefined;
  const spawn = async (jobs: readonly SpawnedJob[]) => {
    if (jobs.length === 0) return;
    if (!spawnQueue) {
      spawnQueue = new Queue<JobData, JobOutcome>(options.name, { connection: flags, prefix: QUEUE_PREFIX });
      spawnQueue.on('error', (error) => options.onError?.(error));
    }
    await spawnQueue.addBulk(
      jobs.map(({ id, data }) => ({
        name: kindOf(data),
        data,
        opts: {
          jobId: id,
          removeOnComplete: { age: 86400, count: 10_000 },
          removeOnFail: { age: 7 * 86400, count: 10_000 },
        },
      })),
    );
  };
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
            id: job.id,
            spawn,
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
    void spawnQueue?.close().catch(() => undefined);
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
