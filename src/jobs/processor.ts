/**
 * The search job processor: runs the maximal-text search of a job on a model, reports progress
 * whenever the best score improves (and at least every second), polls the cancellation flag
 * before every step, and stores a finished result in the cache under the request's hash, so that an
 * identical request is answered from the cache (and, for a single neuron, as that neuron's best
 * search whatever its parameters, when it beats the one stored). A stopped search stores nothing. When the worker shuts down mid-search, the search
 * stops at the next step and the processor throws JobHandedBack, so the job can be queued again.
 */
import path from 'node:path';
import { cacheKey, type BinaryCache } from '../cache/index.js';
import type { ClipModel } from '../clip/clip-model.js';
import { searchMaxText, type MaxTextResult } from '../search/max-text.js';
import type { MaxTextRequest } from '../search/request.js';
import { vocabularyOf } from '../search/vocabulary.js';
import { JobHandedBack, type KindProcessor, type SearchProgress as JobProgress } from './types.js';

const PROGRESS_EVERY_MS = 1000;
/** Results stay a week; the cache's own bounds may evict them sooner. */
export const RESULT_TTL_SECONDS = 7 * 86400;

/** Where the finished result of a request hash is cached. */
export function resultKey(modelSha256: string, hash: string): string {
  return cacheKey(modelSha256, 'max-text.result.v1', hash);
}

/** The progress a taken-over search can go on from: some steps done, a best text, steps left. */
function resumable(
  request: MaxTextRequest,
  progress: JobProgress | undefined,
): (JobProgress & { bestText: string; bestScore: number }) | undefined {
  if (!progress || progress.steps <= 0 || progress.steps >= request.steps) return undefined;
  if (progress.bestText === null || progress.bestScore === null || progress.bestText === '') return undefined;
  if (progress.bestText.length > 500) return undefined;
  return progress as JobProgress & { bestText: string; bestScore: number };
}

/** Where the best finished search of a neuron (any parameters) is cached. */
export function bestKey(modelSha256: string, neuron: number): string {
  return cacheKey(modelSha256, 'max-text.best.v1', String(neuron));
}

/** A neuron's best finished search and the request that found it. */
export interface BestSearch {
  request: MaxTextRequest;
  result: MaxTextResult;
}

export interface SearchProcessorOptions {
  /**
   * DATA_DIR: the vocabulary's embeddings, which every search of the model needs and no search
   * changes, are shared through DATA_DIR/max-text/ with the other processes and later starts
   * (src/search/vocabulary.ts). Without it they are computed once per process.
   */
  dataDir?: string;
  warn?: (message: string) => void;
}

export function searchProcessor(
  model: ClipModel,
  cache: BinaryCache,
  options: SearchProcessorOptions = {},
): KindProcessor<'max-text'> {
  if (options.dataDir !== undefined) {
    vocabularyOf(model, { dir: path.join(options.dataDir, 'max-text'), warn: options.warn });
  }
  return async (data, context) => {
    if (await context.isCancelled()) return { cancelled: true };
    let lastScore: number | null = null;
    let lastReport = 0;
    let cancelled = false;
    let handedBack = false;
    const report = async (progress: JobProgress, force = false) => {
      const improved = progress.bestScore !== lastScore;
      if (!force && !improved && Date.now() - lastReport < PROGRESS_EVERY_MS) return;
      lastScore = progress.bestScore;
      lastReport = Date.now();
      await context.reportProgress(progress);
    };
    // A taken-over job goes on from its last reported best text, for the steps that are left.
    const from = resumable(data.request, context.resumeFrom);
    const request = from
      ? { ...data.request, startText: from.bestText, steps: data.request.steps - from.steps }
      : data.request;
    const offset = (progress: JobProgress): JobProgress =>
      from
        ? {
            ...progress,
            steps: progress.steps + from.steps,
            totalSteps: data.request.steps,
            evaluations: progress.evaluations + from.evaluations,
          }
        : progress;
    const searched = await searchMaxText(model, cache, request, {
      onProgress: (progress) => report(offset(progress)),
      shouldStop: async () => {
        if (context.shouldHandBack?.()) handedBack = true;
        return handedBack || (cancelled ||= await context.isCancelled());
      },
    });
    const result: MaxTextResult = from
      ? {
          ...searched,
          steps: searched.steps + from.steps,
          evaluations: searched.evaluations + from.evaluations,
          resumedFrom: { steps: from.steps, evaluations: from.evaluations, score: from.bestScore },
        }
      : searched;
    if (handedBack && !cancelled) throw new JobHandedBack();
    await report(
      {
        steps: result.steps,
        totalSteps: data.request.steps,
        evaluations: result.evaluations,
        bestScore: result.score,
        bestText: result.text,
      },
      true,
    );
    // Read afresh: a stop that came during the last step leaves nothing behind either.
    if (cancelled || (await context.isCancelled())) return { cancelled: true };
    // A search its wall-clock limit stopped is this machine's answer, not the request's: not cached.
    if (result.stopReason !== 'time') {
      await cache.setJson(resultKey(model.sha256, data.hash), result, RESULT_TTL_SECONDS);
    }
    const { neuron } = data.request;
    if (neuron !== null && data.request.direction === null) {
      const key = bestKey(model.sha256, neuron);
      const best = await cache.getJson<BestSearch>(key);
      if (!best || result.score > best.result.score) {
        await cache.setJson(key, { request: data.request, result }, RESULT_TTL_SECONDS);
      }
    }
    return { cancelled: false, result };
  };
}
