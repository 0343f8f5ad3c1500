/**
 * The maximal-text search on a loaded CLIP model: builds the objective u·t/|t| (u = Wᵀd, see
 * objective.ts), ranks the vocabulary once per (model, direction) into the candidate pool
 * (candidate-pool.ts, cached) over the vocabulary's embeddings (vocabulary.ts: computed once per
 * model, not per search), and hill-climbs (hill-climb.ts) with the text encoder as scorer.
 * The reported scores are the objective alone, without the fluency penalty: for a neuron they
 * equal /v1/attribution/text's value for that neuron with normalize "unit".
 */
import { cacheKey, type BinaryCache } from '../cache/index.js';
import type { ClipModel } from '../clip/clip-model.js';
import { cachedSingleTokenScores, modelScorer, rankedPool } from './candidate-pool.js';
import { fluencyPenalty } from './fluency.js';
import { hillClimb, type HillClimbProgress, type SequenceScorer, type StopReason } from './hill-climb.js';
import { neuronProjection, projectDirection } from './objective.js';
import { directionKey, type MaxTextRequest } from './request.js';
import { textFunctions } from './token-text.js';
import { vocabularyOf, type VocabularyEmbeddings } from './vocabulary.js';

export interface MaxTextResult {
  text: string;
  score: number;
  ids: number[];
  top: { text: string; score: number }[];
  curve: number[];
  steps: number;
  evaluations: number;
  restartsUsed: number;
  stopReason: StopReason;
  elapsedMs: number;
  /**
   * Set when the search was taken over from a worker that died or stopped: it went on from that
   * worker's last reported state (its best text, after `steps` steps and `evaluations`
   * evaluations); `curve` then covers the steps after it, and `steps`/`evaluations` count both parts.
   */
  resumedFrom?: { steps: number; evaluations: number; score: number };
}

export interface SearchHooks {
  onProgress?: (progress: HillClimbProgress) => void | Promise<void>;
  shouldStop?: () => boolean | Promise<boolean>;
  /** The vocabulary's embeddings to rank the pool with; default: the process's one for the model. */
  vocabulary?: VocabularyEmbeddings;
}

/** The projection u = Wᵀd of the request's neuron or direction. */
export function requestProjection(model: ClipModel, request: MaxTextRequest): Float32Array {
  return request.neuron !== null
    ? neuronProjection(model.bilinear, request.neuron, model.embedDim)
    : projectDirection(model.bilinear, request.direction!, model.embedDim);
}

/** How many of the best-ranked tokens the pool keeps (the climber samples from its top 256). */
export const POOL_KEEP = 1024;

/**
 * The vocabulary ranked by single-token objective for the request's direction (scores cached),
 * keeping only tokens that are their own text's encoding: a lone byte of a multi-byte character,
 * say, decodes to U+FFFD and is never the token of any text, so its score says nothing.
 */
export async function candidatePool(
  model: ClipModel,
  cache: BinaryCache,
  request: MaxTextRequest,
  isOwnEncoding: (id: number) => boolean,
  vocabulary: VocabularyEmbeddings = vocabularyOf(model),
): Promise<number[]> {
  const u = requestProjection(model, request);
  const key = cacheKey(model.sha256, 'max-text.pool.v1', directionKey(request));
  const scores = await cachedSingleTokenScores(model, cache, key, () => vocabulary.scores(u));
  const { startId, endId } = model.tokenizer;
  return rankedPool(scores, new Set([startId, endId]), isOwnEncoding, POOL_KEEP);
}

/** What a search on the model needs besides its budgets: scorer, pool and text functions. */
export interface SearchSetup {
  scorer: SequenceScorer;
  pool: number[];
  vocabSize: number;
  excluded: Set<number>;
  describe: (ids: readonly number[]) => string;
  canonicalize: (ids: readonly number[]) => number[] | undefined;
  uniformTokens: readonly number[];
}

export async function searchSetup(
  model: ClipModel,
  cache: BinaryCache,
  request: MaxTextRequest,
  vocabulary: VocabularyEmbeddings = vocabularyOf(model),
): Promise<SearchSetup> {
  const { tokenizer } = model;
  const { describe, canonicalize, isOwnEncoding, ownEncodings } = textFunctions(tokenizer);
  return {
    scorer: modelScorer(model, requestProjection(model, request)),
    pool: await candidatePool(model, cache, request, isOwnEncoding, vocabulary),
    vocabSize: tokenizer.vocabSize,
    excluded: new Set([tokenizer.startId, tokenizer.endId]),
    describe,
    canonicalize,
    // Uniform proposals, like the pool, use only tokens that are their own text's encoding: a
    // lone word piece or byte would be re-tokenised into something else anyway.
    uniformTokens: ownEncodings(),
  };
}

export async function searchMaxText(
  model: ClipModel,
  cache: BinaryCache,
  request: MaxTextRequest,
  hooks: SearchHooks = {},
): Promise<MaxTextResult> {
  const started = Date.now();
  const { tokenizer } = model;
  const setup = await searchSetup(model, cache, request, hooks.vocabulary);
  const start = request.startText === null ? undefined : tokenizer.encode(request.startText).ids.slice(1, -1);
  const result = await hillClimb({
    ...setup,
    length: request.length,
    steps: request.steps,
    batch: request.batch,
    restarts: request.restarts,
    seed: request.seed,
    timeLimitMs: request.timeLimitS === null ? Infinity : request.timeLimitS * 1000,
    start,
    penalty: fluencyPenalty(tokenizer, request.fluency),
    onProgress: hooks.onProgress,
    shouldStop: hooks.shouldStop,
  });
  return {
    text: result.text,
    score: result.score,
    ids: result.ids,
    top: result.top.map(({ text, score }) => ({ text, score })),
    curve: result.curve,
    steps: result.steps,
    evaluations: result.evaluations,
    restartsUsed: result.restartsUsed,
    stopReason: result.stopReason,
    elapsedMs: Date.now() - started,
  };
}
