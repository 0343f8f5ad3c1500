/**
 * The shapes of the job queue: a job's public view, what a job carries, and the backend contract
 * that both the BullMQ (Redis) and the in-process backends implement.
 */
import type { MaxTextResult } from '../search/max-text.js';
import type { MaxTextRequest } from '../search/request.js';
import type { HillClimbProgress } from '../search/hill-climb.js';

export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

export const TERMINAL_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];

export type JobProgress = HillClimbProgress;

export interface JobView {
  id: string;
  state: JobState;
  progress: JobProgress;
  result?: MaxTextResult;
  error?: string;
  /** True when the result came from the cache of an earlier identical search. */
  cached?: boolean;
  /** Clients following the job (its submitters; see JobOwner). */
  subscribers?: number;
}

/** What a queued job carries: the normalised request and its hash (with the model sha). */
export interface JobData {
  request: MaxTextRequest;
  hash: string;
}

/** How a search job ended: finished with its result, or stopped (nothing is kept of it). */
export interface JobOutcome {
  cancelled: boolean;
  result?: MaxTextResult;
}

export interface JobContext {
  reportProgress(progress: JobProgress): Promise<void>;
  /** True once the job is stopped (read afresh on every call). */
  isCancelled(): Promise<boolean>;
  /**
   * The job's last reported progress when it was taken over (its worker died, or handed it back on
   * SIGTERM): the search goes on from there instead of starting again at step 0.
   */
  resumeFrom?: JobProgress;
  /** True once this worker is shutting down: the job should stop and go back to the queue. */
  shouldHandBack?(): boolean;
}

/** Thrown by a processor that stopped because its worker is shutting down (see JobContext). */
export class JobHandedBack extends Error {
  constructor() {
    super('the worker is shutting down; the job goes back to the queue');
    this.name = 'JobHandedBack';
  }
}

/** Runs one job; the same function runs in the server's in-process worker and in src/bin/worker.ts. */
export type JobProcessor = (data: JobData, context: JobContext) => Promise<JobOutcome>;

/**
 * Who submitted or follows a job: `key:<sha256 prefix>` for a valid API key, else `ip:<address>`.
 * Identical requests share one job; each submitter is one of its subscribers.
 */
export type JobOwner = string;

export interface JobBackend {
  readonly kind: 'bullmq' | 'memory';
  /**
   * Queues a job under `id`, unless a job for the same request hash is already queued or running
   * (and not cancelled): then nothing is added. Resolves with the id of the job that will answer.
   */
  add(id: string, data: JobData): Promise<string>;
  get(id: string): Promise<JobView | undefined>;
  /** The queued or running (not cancelled) job of a request hash, if any. */
  findActive(hash: string): Promise<string | undefined>;
  /** Adds `owner` to the job's subscribers (and the job to the owner's jobs). */
  subscribe(id: string, owner: JobOwner): Promise<void>;
  subscribers(id: string): Promise<JobOwner[]>;
  /** Removes `owner` from the job's subscribers; resolves with how many are left. */
  unsubscribe(id: string, owner: JobOwner): Promise<number>;
  /** Queued or running jobs that `owner` subscribes to. */
  activeJobsOf(owner: JobOwner): Promise<number>;
  /**
   * Stops the job at once: its view is frozen as it is now (state cancelled, no later step, no
   * result), and its worker stops at its next step and stores nothing.
   */
  stop(id: string): Promise<void>;
  /** Jobs queued and not yet started (the queue depth). */
  waitingCount(): Promise<number>;
  close(): Promise<void>;
}

export function emptyProgress(totalSteps: number): JobProgress {
  return { steps: 0, totalSteps, evaluations: 0, bestScore: null, bestText: null };
}
