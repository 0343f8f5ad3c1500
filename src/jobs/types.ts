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
}

/** What a queued job carries: the normalised request and its hash (with the model sha). */
export interface JobData {
  request: MaxTextRequest;
  hash: string;
}

/** How a search job ended: finished, or stopped by a cancellation with its best so far. */
export interface JobOutcome {
  cancelled: boolean;
  result: MaxTextResult;
}

export interface JobContext {
  reportProgress(progress: JobProgress): Promise<void>;
  isCancelled(): Promise<boolean>;
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

export interface JobBackend {
  readonly kind: 'bullmq' | 'memory';
  /**
   * Queues a job under `id`, unless a job for the same request hash is already queued or running
   * (and not cancelled): then nothing is added. Resolves with the id of the job that will answer.
   */
  add(id: string, data: JobData): Promise<string>;
  get(id: string): Promise<JobView | undefined>;
  /** Flags the job as cancelled; its worker stops at the next step. */
  cancel(id: string): Promise<void>;
  /** Jobs queued and not yet started (the queue depth). */
  waitingCount(): Promise<number>;
  close(): Promise<void>;
}

export function emptyProgress(totalSteps: number): JobProgress {
  return { steps: 0, totalSteps, evaluations: 0, bestScore: null, bestText: null };
}
