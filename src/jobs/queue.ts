/**
 * app.jobs: the one job API of the service, over either backend (BullMQ or in-process).
 *
 * submit() answers identical requests without a new search: the hash of the normalised request
 * and the model's sha256 names (1) the cached result of a finished search — then the job id is
 * `cached-<hash>`, a job that is completed from the start — and (2) the identical job that is
 * still queued or running, whose id is returned instead of a new one. The backend makes (2)
 * atomic: simultaneous identical requests, to one server or to several, share one job.
 */
import { randomUUID } from 'node:crypto';
import type { BinaryCache } from '../cache/index.js';
import type { MaxTextResult } from '../search/max-text.js';
import { requestHash, type MaxTextRequest } from '../search/request.js';
import { resultKey } from './processor.js';
import { TERMINAL_STATES, type JobBackend, type JobView } from './types.js';

const CACHED_PREFIX = 'cached-';

export interface Submitted {
  jobId: string;
  /** The result is already known (the job is completed). */
  cached: boolean;
  /** An identical job was already queued or running; this is its id. */
  deduplicated: boolean;
}

export class JobQueue {
  constructor(
    readonly backend: JobBackend,
    private readonly cache: BinaryCache,
    private readonly modelSha256: string,
  ) {}

  async submit(request: MaxTextRequest): Promise<Submitted> {
    const hash = requestHash(this.modelSha256, request);
    if (await this.cachedResult(request))
      return { jobId: CACHED_PREFIX + hash, cached: true, deduplicated: false };
    const id = randomUUID();
    const jobId = await this.backend.add(id, { request, hash });
    return { jobId, cached: false, deduplicated: jobId !== id };
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
    return { id, state: 'completed', progress, result, cached: true };
  }

  /** Cancels a queued or running job; a finished job is left as it is. Undefined: no such job. */
  async cancel(id: string): Promise<JobView | undefined> {
    const view = await this.get(id);
    if (!view || isTerminal(view)) return view;
    await this.backend.cancel(id);
    return this.get(id);
  }

  /**
   * Follows a job: calls `onView` with its view now and whenever its state or best score changes,
   * until it ends (polling every `intervalMs`) or `signal` aborts. Resolves with the last view.
   */
  async watch(
    id: string,
    onView: (view: JobView) => void,
    signal: AbortSignal,
    intervalMs = 200,
  ): Promise<JobView | undefined> {
    let last: JobView | undefined;
    let lastKey = '';
    while (!signal.aborted) {
      const view = await this.get(id);
      if (!view) return last;
      const key = `${view.state}|${view.progress.bestScore}|${view.progress.steps}`;
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
