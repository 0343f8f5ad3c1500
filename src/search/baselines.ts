/**
 * Baselines for the hill climber, at a given number of evaluations:
 *  - random search: score `evaluations` random sequences of `length` tokens drawn from the same
 *    distribution as the climber's proposals (top of the ranked pool, plus a uniform share), in
 *    batches of `batch`, and keep the best;
 *  - the best single vocabulary token: the head of the ranked pool (its score costs one pass over
 *    the vocabulary, which the climber pays once as well).
 */
import { SeededRandom } from './random.js';
import type { ScoredText, SequenceScorer } from './hill-climb.js';

export interface RandomSearchOptions {
  scorer: SequenceScorer;
  evaluations: number;
  length: number;
  batch: number;
  seed: number;
  pool: readonly number[];
  poolSize?: number;
  uniformShare?: number;
  vocabSize: number;
  excluded: ReadonlySet<number>;
  uniformTokens?: readonly number[];
  describe: (ids: readonly number[]) => string;
  canonicalize?: (ids: readonly number[]) => number[] | undefined;
}

export async function randomSearch(options: RandomSearchOptions): Promise<ScoredText> {
  const { poolSize = 256, uniformShare = 0.2 } = options;
  const rng = new SeededRandom(options.seed);
  const top = options.pool.slice(0, Math.max(1, Math.min(poolSize, options.pool.length)));
  const token = () => {
    if (rng.next() >= uniformShare) return rng.pick(top);
    if (options.uniformTokens?.length) return rng.pick(options.uniformTokens);
    for (;;) {
      const id = rng.int(options.vocabSize);
      if (!options.excluded.has(id)) return id;
    }
  };
  let best: ScoredText | undefined;
  for (let done = 0; done < options.evaluations;) {
    const rows: number[][] = [];
    while (rows.length < Math.min(options.batch, options.evaluations - done)) {
      const random = Array.from({ length: options.length }, token);
      const ids = options.canonicalize ? options.canonicalize(random) : random;
      if (ids && ids.length >= 1 && ids.length <= options.length) rows.push(ids);
    }
    const scores = await options.scorer.score(rows);
    done += rows.length;
    rows.forEach((ids, i) => {
      if (!best || scores[i] > best.score) best = { ids, text: options.describe(ids), score: scores[i] };
    });
  }
  return best!;
}
