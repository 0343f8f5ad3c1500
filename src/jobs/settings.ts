/**
 * The job queue's environment variables (read here rather than in src/config.ts, which other
 * parts of the service own):
 *   WORKER_IN_PROCESS   "false" keeps the HTTP server from working jobs itself (with Redis only;
 *                       without Redis the in-process queue always works its jobs). Default true.
 *   WORKER_CONCURRENCY  searches one worker runs at a time (1–64, default 1).
 *   WORKER_COLLECTION_CONCURRENCY  collection builds and shards one worker (or, without Redis, the
 *                       server) runs at a time, besides its searches (1–64, default 1 with Redis,
 *                       4 without: there, each build does all its shards itself).
 *   WORKER_LOCK_MS      BullMQ job lock duration: how soon a dead worker's job is taken over
 *                       (1,000–600,000 ms, default 10,000).
 *   JOBS_MAX_PER_OWNER  queued or running searches one client (API key, or address when the service
 *                       is open) may have at once; past it, 429 with Retry-After (1–10,000, default 8).
 *   JOBS_MAX_QUEUED     searches waiting in the queue (all clients) past which new ones get 503
 *                       with Retry-After (1–1,000,000, default 256).
 */
import { ConfigError } from '../config.js';

export interface WorkerSettings {
  inProcess: boolean;
  concurrency: number;
  /** Collection builds and shards at a time (the collections lane). */
  collectionConcurrency: number;
  lockDurationMs: number;
  maxJobsPerOwner: number;
  maxQueuedJobs: number;
}

type Env = Record<string, string | undefined>;

function readInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

export function workerSettings(env: Env = process.env): WorkerSettings {
  const inProcess = env.WORKER_IN_PROCESS?.trim().toLowerCase();
  if (inProcess && !['true', 'false', '1', '0'].includes(inProcess)) {
    throw new ConfigError(`WORKER_IN_PROCESS must be true or false, got "${env.WORKER_IN_PROCESS}"`);
  }
  return {
    inProcess: inProcess !== 'false' && inProcess !== '0',
    concurrency: readInt(env, 'WORKER_CONCURRENCY', 1, 1, 64),
    collectionConcurrency: readInt(
      env,
      'WORKER_COLLECTION_CONCURRENCY',
      env.REDIS_URL?.trim() ? 1 : 4,
      1,
      64,
    ),
    lockDurationMs: readInt(env, 'WORKER_LOCK_MS', 10_000, 1000, 600_000),
    maxJobsPerOwner: readInt(env, 'JOBS_MAX_PER_OWNER', 8, 1, 10_000),
    maxQueuedJobs: readInt(env, 'JOBS_MAX_QUEUED', 256, 1, 1_000_000),
  };
}
