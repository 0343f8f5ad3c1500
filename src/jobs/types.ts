/**
 * The shapes of the job queue: the job kinds (each with its data, progress and result), a job's
 * public view, and the backend contract that both the BullMQ (Redis) and the in-process backends
 * implement.
 *
 * Adding a kind (say, a typographic-attack sweep): its entry in JobKinds (data, progress, result),
 * its lane and id prefix in JOB_KINDS, its empty progress in emptyProgressOf, and its processor in
 * src/jobs/registry.ts; the backends, the queue and the routes then carry it as they are.
 */
import type { MaxTextResult } from '../search/max-text.js';
import type { MaxTextRequest } from '../search/request.js';
import type { HillClimbProgress } from '../search/hill-climb.js';
import type { AttackJobData, AttackJobResult, AttackProgress } from '../typographic/job.js';
import type {
  LabelJobData,
  LabelProgress,
  LabelResult,
  LabelShardJobData,
  LabelShardProgress,
  LabelShardResult,
} from '../evidence/label-job.js';

export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

export const TERMINAL_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];

/** A maximal-text search's progress (its hill climb). */
export type SearchProgress = HillClimbProgress;

/** What a queued search carries: the normalised request and its hash (with the model sha). */
export interface MaxTextJobData {
  /** Absent on searches queued before jobs had kinds. */
  kind?: 'max-text';
  request: MaxTextRequest;
  hash: string;
}

/** A collection build: indexes the collection's pending uploads (src/collections/build-job.ts). */
export interface CollectionBuildJobData {
  kind: 'collection-build';
  collection: string;
  /** Names the build for deduplication: one build of a collection is queued or running at a time. */
  hash: string;
}

/** One shard of a build (a contiguous range of its pending uploads), for any worker to take. */
export interface CollectionShardJobData {
  kind: 'collection-shard';
  collection: string;
  /** The build (parent job) the shard belongs to. */
  build: string;
  shard: number;
  hash: string;
}

/** An upload a build did not index, and why. */
export interface BuildSkipped {
  name: string;
  reason: string;
}

/** A build's progress, aggregated over its shards by the build (parent) job. */
export interface BuildProgress {
  collection: string;
  /** Uploads taken so far (indexed, duplicate or skipped), committed or in shards still running. */
  done: number;
  /** Uploads the build knows of (uploads that arrive while it runs join it). */
  total: number;
  /** Images of the collection indexed and served (a contiguous prefix of its rows). */
  indexed: number;
  /** Uploads that were not images, with the reason (the first 100). */
  skipped: BuildSkipped[];
  duplicates: number;
  /** Uploads per second since this build (or its resumption) started. */
  imagesPerSecond: number | null;
  shards: { total: number; committed: number; running: number };
}

/** How a build ended (the manifest of the collection holds the rest). */
export interface BuildResult {
  collection: string;
  images: number;
  done: number;
  skipped: number;
  duplicates: number;
  /** Another build of the collection was running: this one joined it (its id). */
  joined?: string;
  /** Processes that computed shards of this build (pid@host), for the record. */
  workers: string[];
}

/** One shard's progress and what it did. */
export interface ShardProgress {
  collection: string;
  build: string;
  shard: number;
  done: number;
  total: number;
}

export interface ShardResult {
  /** False: the shard was already taken, done or dropped; nothing was computed here. */
  computed: boolean;
  done: number;
}

/** Every kind of job: what it carries, how it reports progress, what it gives. */
export interface JobKinds {
  'max-text': { data: MaxTextJobData; progress: SearchProgress; result: MaxTextResult };
  'collection-build': { data: CollectionBuildJobData; progress: BuildProgress; result: BuildResult };
  'collection-shard': { data: CollectionShardJobData; progress: ShardProgress; result: ShardResult };
  'typographic-attack': { data: AttackJobData; progress: AttackProgress; result: AttackJobResult };
  'neuron-labels': { data: LabelJobData; progress: LabelProgress; result: LabelResult };
  'neuron-labels-shard': { data: LabelShardJobData; progress: LabelShardProgress; result: LabelShardResult };
}

export type JobKind = keyof JobKinds;
export type JobData = JobKinds[JobKind]['data'];
export type JobProgress = JobKinds[JobKind]['progress'];
export type JobResult = JobKinds[JobKind]['result'];

/**
 * Where each kind runs. A lane is a queue of its own (a BullMQ queue with Redis, a concurrency
 * slot in process without), so that a long build never waits behind searches, nor searches behind
 * it. Ids of a kind start with its prefix, so that an id alone names its lane.
 */
export const JOB_KINDS: Record<JobKind, { lane: JobLane; idPrefix: string }> = {
  'max-text': { lane: 'search', idPrefix: '' },
  'collection-build': { lane: 'collections', idPrefix: 'build-' },
  'collection-shard': { lane: 'collections', idPrefix: 'shard-' },
  // Batch work on images, like builds: it never waits behind searches.
  'typographic-attack': { lane: 'collections', idPrefix: 'attack-' },
  // The whole-model labelling (src/evidence/label-job.ts) and its shards: batch work, like builds.
  'neuron-labels': { lane: 'collections', idPrefix: 'labels-' },
  'neuron-labels-shard': { lane: 'collections', idPrefix: 'labelshard-' },
};

export type JobLane = 'search' | 'collections';
export const JOB_LANES: readonly JobLane[] = ['search', 'collections'];

export function kindOf(data: JobData): JobKind {
  return data.kind ?? 'max-text';
}

/** The lane of a job id (searches have no prefix). */
export function laneOfId(id: string): JobLane {
  for (const spec of Object.values(JOB_KINDS)) {
    if (spec.idPrefix !== '' && id.startsWith(spec.idPrefix)) return spec.lane;
  }
  return 'search';
}

export function emptyProgressOf(data: JobData): JobProgress {
  switch (data.kind) {
    case undefined:
    case 'max-text':
      return emptyProgress(data.request.steps);
    case 'collection-build':
      return {
        collection: data.collection,
        done: 0,
        total: 0,
        indexed: 0,
        skipped: [],
        duplicates: 0,
        imagesPerSecond: null,
        shards: { total: 0, committed: 0, running: 0 },
      };
    case 'collection-shard':
      return { collection: data.collection, build: data.build, shard: data.shard, done: 0, total: 0 };
    case 'typographic-attack':
      return { done: 0, total: (data.request.collection?.images ?? data.request.images ?? []).length };
    case 'neuron-labels':
      return {
        collection: data.collection,
        done: 0,
        total: 0,
        shards: { total: 0, written: 0, running: 0 },
        resumedShards: 0,
        neuronsPerSecond: null,
      };
    case 'neuron-labels-shard':
      return { job: data.job, shard: data.shard, done: 0, total: 0 };
  }
}

export interface JobView {
  id: string;
  kind: JobKind;
  state: JobState;
  progress: JobProgress;
  result?: JobResult;
  error?: string;
  /** True when the result came from the cache of an earlier identical search. */
  cached?: boolean;
  /** Clients following the job (its submitters; see JobOwner). */
  subscribers?: number;
}

/** How a job ended: finished with its result, or stopped (nothing is kept of it). */
export interface JobOutcome<R = JobResult> {
  cancelled: boolean;
  result?: R;
}

/** A job queued by a running job (a build's shards), for any worker of its lane to take. */
export interface SpawnedJob {
  id: string;
  data: JobData;
}

export interface JobContext<P = JobProgress> {
  /** The job's id. */
  id?: string;
  reportProgress(progress: P): Promise<void>;
  /** True once the job is stopped (read afresh on every call). */
  isCancelled(): Promise<boolean>;
  /**
   * The job's last reported progress when it was taken over (its worker died, or handed it back on
   * SIGTERM): the search goes on from there instead of starting again at step 0.
   */
  resumeFrom?: P;
  /** True once this worker is shutting down: the job should stop and go back to the queue. */
  shouldHandBack?(): boolean;
  /**
   * Queues jobs for other workers of the queue (BullMQ only: in process, nobody else would take
   * them, and the job does the work itself).
   */
  spawn?(jobs: readonly SpawnedJob[]): Promise<void>;
}

/** Thrown by a processor that stopped because its worker is shutting down (see JobContext). */
export class JobHandedBack extends Error {
  constructor() {
    super('the worker is shutting down; the job goes back to the queue');
    this.name = 'JobHandedBack';
  }
}

/** Runs one job of a kind. */
export type KindProcessor<K extends JobKind> = (
  data: JobKinds[K]['data'],
  context: JobContext<JobKinds[K]['progress']>,
) => Promise<JobOutcome<JobKinds[K]['result']>>;

/** Runs one job of any kind; the same function runs in the server's in-process worker and in src/bin/worker.ts. */
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
  /** The queued or running (not cancelled) job of a request hash (in the lane of `kind`), if any. */
  findActive(hash: string, kind?: JobKind): Promise<string | undefined>;
  /** Adds `owner` to the job's subscribers (and the job to the owner's jobs). */
  subscribe(id: string, owner: JobOwner): Promise<void>;
  subscribers(id: string): Promise<JobOwner[]>;
  /** Removes `owner` from the job's subscribers; resolves with how many are left. */
  unsubscribe(id: string, owner: JobOwner): Promise<number>;
  /** Queued or running searches that `owner` subscribes to (the per-owner limit counts searches). */
  activeJobsOf(owner: JobOwner): Promise<number>;
  /**
   * Stops the job at once: its view is frozen as it is now (state cancelled, no later step, no
   * result), and its worker stops at its next step and stores nothing.
   */
  stop(id: string): Promise<void>;
  /** Searches queued and not yet started (the queue depth that JOBS_MAX_QUEUED bounds). */
  waitingCount(): Promise<number>;
  close(): Promise<void>;
}

export function emptyProgress(totalSteps: number): SearchProgress {
  return { steps: 0, totalSteps, evaluations: 0, bestScore: null, bestText: null };
}
