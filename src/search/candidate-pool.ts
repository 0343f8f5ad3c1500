/**
 * The ranked candidate pool of the hill climber: every vocabulary token v is scored on its own,
 * f([start, v, end]), and the tokens are ranked by that cheap score. Proposals then mostly draw
 * from the top of the ranking. The embeddings of those rows do not depend on the direction: they
 * are computed once per model (vocabulary.ts), and a direction's scores are u·t_v/|t_v| over
 * them; the scores depend on the model and the direction only, so they are cached per (model,
 * direction) as well. singleTokenScores is the pass that every search used to run, kept as the
 * reference that the shared embeddings are tested against (test/search-vocabulary.test.ts).
 */
import type { BinaryCache } from '../cache/index.js';
import type { ClipModel } from '../clip/clip-model.js';
import { objectiveValue } from './objective.js';
import type { SequenceScorer } from './hill-climb.js';
import { VOCABULARY_CHUNK } from './vocabulary.js';

/** Scores token sequences with the model: rows [start, ...ids, end] at their real length. */
export function modelScorer(model: ClipModel, u: Float32Array): SequenceScorer {
  const { startId, endId } = model.tokenizer;
  return {
    async score(sequences) {
      const embeddings = await model.embedTokenRows(sequences.map((ids) => [startId, ...ids, endId]));
      return embeddings.map((t) => objectiveValue(u, t));
    },
  };
}

/**
 * The single-token objective of every vocabulary id by a pass of the scorer over the vocabulary
 * (the per-search pass before vocabulary.ts; the reference in tests); special tokens get -Infinity.
 */
export async function singleTokenScores(model: ClipModel, scorer: SequenceScorer): Promise<Float32Array> {
  const { vocabSize, startId, endId } = model.tokenizer;
  const scores = new Float32Array(vocabSize).fill(-Infinity);
  for (let first = 0; first < vocabSize; first += VOCABULARY_CHUNK) {
    const ids: number[] = [];
    for (let id = first; id < Math.min(vocabSize, first + VOCABULARY_CHUNK); id++) {
      if (id !== startId && id !== endId) ids.push(id);
    }
    const values = await scorer.score(ids.map((id) => [id]));
    ids.forEach((id, i) => (scores[id] = values[i]));
  }
  return scores;
}

/** Token ids sorted by score, best first, leaving out the excluded (and non-finite) ones. */
export function rankTokens(scores: Float32Array, excluded: ReadonlySet<number>): number[] {
  const ids: number[] = [];
  for (let id = 0; id < scores.length; id++)
    if (!excluded.has(id) && Number.isFinite(scores[id])) ids.push(id);
  return ids.sort((a, b) => scores[b] - scores[a] || a - b);
}

/** The best `keep` ids by score that pass `keeps` (the pool: tokens that are their own encoding). */
export function rankedPool(
  scores: Float32Array,
  excluded: ReadonlySet<number>,
  keeps: (id: number) => boolean,
  keep: number,
): number[] {
  const pool: number[] = [];
  for (const id of rankTokens(scores, excluded)) {
    if (keeps(id)) pool.push(id);
    if (pool.length >= keep) break;
  }
  return pool;
}

/** Single-token scores through the cache: computed (by `compute`) once per (model, direction key). */
export async function cachedSingleTokenScores(
  model: ClipModel,
  cache: BinaryCache,
  key: string,
  compute: () => Promise<Float32Array>,
): Promise<Float32Array> {
  const cached = await cache.getVector(key);
  if (cached && cached.length === model.tokenizer.vocabSize) return cached;
  const scores = await compute();
  await cache.setVector(key, scores);
  return scores;
}
