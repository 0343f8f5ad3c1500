/**
 * app.jobs: the one job API of the service, over either backend (BullMQ or in-process).
 *
 * submit() answers identical requests without a new search: the hash of the normalised request
 * and the model's sha256 names (1) the cached result of a finished search — then the job id is
 * `cached-<hash>`, a job that is completed from the start — and (2) the identical job that is
 * still queued or running, whose id is returned instead of a new one. The backend makes (2)
 * atomic: simultaneous identical requests, to one server or to several, share one job.
 *
 * Owners: every submitter of a job (an API key, or the client address when the service is open) is
 * one of its subscribers. A cancel by a subscriber detaches that subscriber only; the job stops
 * when none is left. An admin stops any job; anyone else gets 403 for a job they do not follow.
 *
 * Other kinds (collection builds) are submitted with submitJob: identical data (a build of the same
 * collection) shares one job too, without a cache of results or the per-owner search limit; a hook
 * per kind (whenStopped) runs after a job of that kind is stopped (a build's collection drops its
 * uploads not yet indexed).
 *
 * Limits: an owner may follow `maxJobsPerOwner` queued or running jobs (429 past it), and a new
 * job is refused while `maxQueuedJobs` wait (503); both with Retry-After. Submissions on one server
 * pass one at a time, so the limits hold exactly for one server (and nearly for several).
 */
import { randomUUID } from 'node:crypto';
import type { BinaryCache } from '../cache/index.js';
import type { MaxTextResult } from '../search/max-text.js';
import { requestHash, type MaxTextRequest } from '../search/request.js';
import { HttpError, RetryLaterError } from '../errors.js';
import { bestKey, resultKey, type BestSearch } from './processor.js';
import { JobRegistry } from './registry.js';
import {
  JOB_KINDS,
  kindOf,
  TERMINAL_STATES,
  type JobBackend,
  type JobData,
  type JobKind,
  type JobOwner,
  type JobView,
} from './types.js';

const CACHED_PREFIX = 'cached-';
/** Retry-After of a refusal for the per-owner or the global limit. */
export const LIMIT_RETRY_AFTER_S = 30;

export interface JobLimits {
  maxJobsPerOwner: number;
  maxQueuedJobs: number;
}

/** Who asks: the owner, and whether the key is an admin's. */
export interface JobClient {
  owner: JobOwner;
  admin: boolean;
}

/** What a cancel did: stopped the job, or only detached the caller (others still follow it). */
export interface Cancelled {
  view: JobView;
  stopped: boolean;
  detached: boolean;
}

export interface Submitted {
  jobId: string;
  /** The result is already known (the job is completed). */
  cached: boolean;
  /** An identical job was already queued or running; this is its id. */
  deduplicated: boolean;
}

export class JobQueue {
  private submissions: Promise<unknown> = Promise.resolve();
  private readonly stopHooks = new Map<JobKind, (view: JobView) => Promise<void>>();

  constructor(
    readonly backend: JobBackend,
    private readonly cache: BinaryCache,
    private readonly modelSha256: string,
    private readonly limits: JobLimits = { maxJobsPerOwner: Infinity, maxQueuedJobs: Infinity },
    /** The processors of every kind this process runs (the backend's processor dispatches to them). */
    readonly registry: JobRegistry = new JobRegistry(),
  ) {}

  /** Submits a search for `owner`: the cached result, the identical job (subscribed to), or a new one. */
  submit(request: MaxTextRequest, owner: JobOwner): Promise<Submitted> {
    // One submission at a time: the limits' checks and the add do not interleave.
    const run = this.submissions.then(() => this.submitNow(request, owner));
    this.submissions = run.catch(() => undefined);
    return run;
  }

  private async submitNow(request: MaxTextRequest, owner: JobOwner): Promise<Submitted> {
    const hash = requestHash(this.modelSha256, request);
    if (await this.cachedResult(request))
      return { jobId: CACHED_PREFIX + hash, cached: true, deduplicated: false };
    for (let attempt = 0; ; attempt++) {
      const existing = await this.backend.findActive(hash);
      const following = existing !== undefined && (await this.backend.subscribers(existing)).includes(owner);
      if (!following) {
        const mine = await this.backend.activeJobsOf(owner);
        if (mine >= this.limits.maxJobsPerOwner) {
          throw new RetryLaterError(
            429,
            `you have ${mine} searches queued or running (JOBS_MAX_PER_OWNER is ${this.limits.maxJobsPerOwner}): wait for one to finish, or cancel one`,
            LIMIT_RETRY_AFTER_S,
          );
        }
      }
      if (existing === undefined) {
        const waiting = await this.backend.waitingCount();
        if (waiting >= this.limits.maxQueuedJobs) {
          throw new RetryLaterError(
            503,
            `${waiting} searches are waiting (JOBS_MAX_QUEUED is ${this.limits.maxQueuedJobs}); retry later`,
            LIMIT_RETRY_AFTER_S,
          );
        }
      }
      const id = randomUUID();
      const jobId = await this.backend.add(id, { request, hash });
      await this.backend.subscribe(jobId, owner);
      // The job joined may have been stopped by its last subscriber meanwhile: then start anew
      // (the stop freed the request for a new job).
      const view = await this.backend.get(jobId);
      if (view?.state === 'cancelled' && attempt < 3) {
        await this.backend.unsubscribe(jobId, owner);
        continue;
      }
      return { jobId, cached: false, deduplicated: jobId !== id };
    }
  }

  /**
   * Submits a job of a kind other than a search (its data carries the hash that identical jobs
   * share): joins the queued or running job of that hash, else queues one under `preferredId` (a
   * resumed build keeps its id) when no job has that id, else under a new id. `owner` subscribes.
   */
  submitJob(
    data: Exclude<JobData, { kind?: 'max-text' }>,
    owner: JobOwner,
    preferredId?: string,
  ): Promise<Submitted> {
    const run = this.submissions.then(async (): Promise<Submitted> => {
      const kind = kindOf(data);
      const existing = await this.backend.findActive(data.hash, kind);
      const prefix = JOB_KINDS[kind].idPrefix;
      let id = existing ?? `${prefix}${randomUUID()}`;
      if (
        existing === undefined &&
        preferredId?.startsWith(prefix) &&
        !(await this.backend.get(preferredId))
      ) {
        id = preferredId;
      }
      const jobId = existing ?? (await this.backend.add(id, data));
      await this.backend.subscribe(jobId, owner);
      return { jobId, cached: false, deduplicated: jobId !== id || existing !== undefined };
    });
    this.submissions = run.catch(() => undefined);
    return run;
  }

  /** Runs `hook` after a job of `kind` is stopped (by a cancel or stopJob), with its view. */
  whenStopped(kind: JobKind, hook: (view: JobView) => Promise<void>): void {
    this.stopHooks.set(kind, hook);
  }

  /** Stops a job whoever follows it (the caller checked the right to), then runs its kind's hook. */
  async stopJob(id: string): Promise<JobView | undefined> {
    const view = await this.get(id);
    if (!view) return undefined;
    if (isTerminal(view)) return view;
    await this.backend.stop(id);
    await this.stopHooks.get(view.kind)?.(view);
    return (await this.get(id)) ?? view;
  }

  /** The best finished search of `neuron` whatever its parameters, if the cache holds one. */
  bestForNeuron(neuron: number): Promise<BestSearch | undefined> {
    return this.cache.getJson<BestSearch>(bestKey(this.modelSha256, neuron));
  }

  /** The finished result of an identical request, if the cache holds one. */
  cachedResult(request: MaxTextRequest): Promise<MaxTextResult | undefined> {
    return this.cache.getJson<MaxTextResult>(
      resultKey(this.modelSha256, requestHash(this.modelSha256, request)),
    );
  }

  async get(id: string): Promise<JobView | undefined> {
    if (!id.startsWith(CACHED_PREFIX)) return this.backend.get(id);
    const hash = id.slice(CACHED_PREFIX.length);
    if (!/^[0-9a-f]{64}$/.test(hash)) return undefined;
    const result = await this.cache.getJson<MaxTextResult>(resultKey(this.modelSha256, hash));
    if (!result) return undefined;
    const progress = {
      steps: result.steps,
      totalSteps: result.steps,
      evaluations: result.evaluations,
      bestScore: result.score,
      bestText: result.text,
    };
    return { id, kind: 'max-text', state: 'completed', progress, result, cached: true };
  }

  /**
   * Cancels for `client`: a subscriber is detached, and the job stops when no subscriber is left;
   * an admin stops the job. A finished job is left as it is. Undefined: no such job. 403 for a
   * client that does not follow the job.
   */
  async cancel(id: string, client: JobClient): Promise<Cancelled | undefined> {
    const view = await this.get(id);
    if (!view) return undefined;
    if (isTerminal(view)) return { view, stopped: false, detached: false };
    if (client.admin) {
      return { view: (await this.stopJob(id)) ?? view, stopped: true, detached: false };
    }
    const subscribers = await this.backend.subscribers(id);
    if (!subscribers.includes(client.owner)) {
      const who =
        view.kind === 'max-text' || view.kind === 'neuron-labels'
          ? 'its submitters'
          : view.kind === 'collection-build'
            ? "the collection's owner"
            : view.kind === 'neuron-labels-shard'
              ? 'the submitters of its labelling job, by cancelling that job'
              : "the collection's owner, by cancelling the build";
      throw new HttpError(
        403,
        `job ${id} was not submitted by you: only ${who} (or an admin key) may cancel it`,
      );
    }
    const left = await this.backend.unsubscribe(id, client.owner);
    if (left > 0) return { view: (await this.get(id)) ?? view, stopped: false, detached: true };
    return { view: (await this.stopJob(id)) ?? view, stopped: true, detached: true };
  }

  /**
   * Follows a job: calls `onView` with its view now and whenever its state or progress changes (for
   * a search: its best score or step),
   * until it ends (polling every `intervalMs`) or `signal` aborts. Resolves with the last view, or
   * undefined when the job is gone (lost with its Redis data). A poll that fails (Redis
   * unreachable) is retried; after `maxFailures` failed polls in a row the error is thrown.
   */
  async watch(
    id: string,
    onView: (view: JobView) => void,
    signal: AbortSignal,
    intervalMs = 200,
    maxFailures = 10,
  ): Promise<JobView | undefined> {
    let last: JobView | undefined;
    let lastKey = '';
    let failures = 0;
    while (!signal.aborted) {
      let view: JobView | undefined;
      try {
        view = await this.get(id);
        failures = 0;
      } catch (error) {
        if (++failures >= maxFailures) throw error;
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
        continue;
      }
      if (!view) return undefined;
      const key =
        'steps' in view.progress
          ? `${view.state}|${view.progress.bestScore}|${view.progress.steps}`
          : `${view.state}|${JSON.stringify(view.progress)}`;
      if (key !== lastKey) onView(view);
      lastKey = key;
      last = view;
      if (isTerminal(view)) return view;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
    return last;
  }

  close(): Promise<void> {
    return this.backend.close();
  }
}

export function isTerminal(view: JobView): boolean {
  return TERMINAL_STATES.includes(view.state);
}
