/**
 * Hill climbing over BPE token sequences, to find the text that most excites a neuron (or a
 * direction over neurons), in the spirit of the "maximal text" of Goh et al. (2021).
 *
 * Algorithm. The state is a token sequence s of 1…`length` tokens (no start/end tokens). Each step
 *   1. proposes `batch` distinct neighbours of s, never evaluated before in this climb: substitute
 *      the token at a random position (70%), delete one (15%, if |s| > 1) or insert one (15%, if
 *      |s| < length). New tokens come from the ranked candidate pool — the `poolSize` vocabulary
 *      tokens whose own single-token objective is highest — or, with probability `uniformShare`,
 *      uniformly from the vocabulary (special tokens excluded; `uniformTokens` may restrict it: the
 *      service keeps tokens that are their own text's encoding). Each proposal is replaced by its
 *      canonical form (the tokens its own text encodes to), so that the score of a sequence is
 *      the score of its text;
 *   2. scores all of them in ONE batched call of the scorer (rows at their real length);
 *   3. moves to the best neighbour if it beats s, by value = objective − fluency penalty.
 * After `patience` steps without improvement the climb restarts from fresh random tokens (at most
 * `restarts` times). It stops when the step budget or the time budget is spent, when the last
 * climb plateaus, or when `shouldStop` says so (cancellation, checked between steps).
 * All randomness comes from a PRNG seeded with `seed`, so a search is reproducible.
 */
import { SeededRandom } from './random.js';

export interface SequenceScorer {
  /** The objective of each token sequence, computed in one batched run. */
  score(sequences: readonly (readonly number[])[]): Promise<number[]>;
}

export interface HillClimbProgress {
  steps: number;
  totalSteps: number;
  evaluations: number;
  bestScore: number | null;
  bestText: string | null;
}

export interface HillClimbOptions {
  scorer: SequenceScorer;
  /** Most tokens in a sequence (1–16); random starts have exactly this many. */
  length: number;
  steps: number;
  batch: number;
  restarts: number;
  seed: number;
  timeLimitMs: number;
  /** Tokens to start the first climb from (cut to `length`). */
  start?: readonly number[];
  /** Vocabulary token ids ranked by their single-token objective, best first. */
  pool: readonly number[];
  /** Proposals draw from the top `poolSize` of the pool (default 256). */
  poolSize?: number;
  /** Share of proposals drawn uniformly from the vocabulary instead (default 0.2). */
  uniformShare?: number;
  vocabSize: number;
  /** Token ids never proposed (start/end of text). */
  excluded: ReadonlySet<number>;
  /** The tokens uniform draws pick from; default: the whole vocabulary but the excluded ids. */
  uniformTokens?: readonly number[];
  /** Subtracted from the objective to rank candidates (the fluency prior); default none. */
  penalty?: (ids: readonly number[]) => number;
  /** Steps without improvement before a restart (default 20). */
  patience?: number;
  /** How many distinct texts to return (default 10). */
  topN?: number;
  /** The text of a token sequence; sequences with the same text count once in `top`. */
  describe: (ids: readonly number[]) => string;
  /**
   * The canonical form of a proposal (for a tokenizer: the tokens its text encodes to, so that a
   * score is the score of the text), or undefined to drop it. Default: the proposal itself.
   */
  canonicalize?: (ids: readonly number[]) => number[] | undefined;
  onProgress?: (progress: HillClimbProgress) => void | Promise<void>;
  shouldStop?: () => boolean | Promise<boolean>;
  now?: () => number;
}

export interface ScoredText {
  text: string;
  score: number;
  ids: number[];
}

export type StopReason = 'steps' | 'time' | 'plateau' | 'cancelled';

export interface HillClimbResult extends ScoredText {
  top: ScoredText[];
  /** Best objective found so far, after each step. */
  curve: number[];
  steps: number;
  evaluations: number;
  restartsUsed: number;
  stopReason: StopReason;
}

interface Candidate {
  ids: number[];
  score: number;
  /** score − penalty: what the climb maximises. */
  value: number;
  /** The text, described only when needed (the best so far, the final top list, ties). */
  text?: string;
}

const MAX_REMEMBERED = 200_000;

export async function hillClimb(options: HillClimbOptions): Promise<HillClimbResult> {
  const o = { poolSize: 256, uniformShare: 0.2, patience: 20, topN: 10, now: Date.now, ...options };
  if (o.pool.length === 0) throw new RangeError('the candidate pool is empty');
  const rng = new SeededRandom(o.seed);
  const started = o.now();
  const poolTop = o.pool.slice(0, Math.max(1, Math.min(o.poolSize, o.pool.length)));
  const penalty = o.penalty ?? (() => 0);
  const distinct = new Map<string, Candidate>();
  let evaluations = 0;
  let steps = 0;
  let restartsUsed = 0;
  let best: Candidate | undefined;
  const curve: number[] = [];
  /** Hashes of the sequences proposed in this climb (raw and canonical): never proposed twice. */
  let seen = new Set<number>();

  const newToken = (): number => {
    if (rng.next() >= o.uniformShare) return rng.pick(poolTop);
    if (o.uniformTokens?.length) return rng.pick(o.uniformTokens);
    for (;;) {
      const id = rng.int(o.vocabSize);
      if (!o.excluded.has(id)) return id;
    }
  };

  const textOf = (candidate: Candidate): string => (candidate.text ??= o.describe(candidate.ids));
  // Canonical token sequences and texts correspond one to one, so the ids can stand for the text.
  const keyOf = o.canonicalize
    ? (candidate: Candidate) => candidate.ids.join(',')
    : (candidate: Candidate) => textOf(candidate);

  // The lowest value in the top-n at the last pruning: the top-n only improves, so a candidate
  // below it can never enter it and needs no key.
  let floor = -Infinity;
  const evaluate = async (sequences: number[][]): Promise<Candidate[]> => {
    const scores = await o.scorer.score(sequences);
    evaluations += sequences.length;
    return sequences.map((ids, i) => {
      const candidate: Candidate = { ids, score: scores[i], value: scores[i] - penalty(ids) };
      if (candidate.value >= floor) {
        const key = keyOf(candidate);
        const known = distinct.get(key);
        if (!known || candidate.value > known.value) distinct.set(key, candidate);
      }
      if (!best || candidate.value > best.value) best = candidate;
      return candidate;
    });
  };

  const neighbour = (s: readonly number[]): number[] => {
    const next = s.slice();
    const r = rng.next();
    if (r < 0.15 && s.length > 1) next.splice(rng.int(s.length), 1);
    else if (r < 0.3 && s.length < o.length) next.splice(rng.int(s.length + 1), 0, newToken());
    else next[rng.int(s.length)] = newToken();
    return next;
  };

  const canonical = (ids: number[]): number[] | undefined => {
    const form = o.canonicalize ? o.canonicalize(ids) : ids;
    return form && form.length >= 1 && form.length <= o.length ? form : undefined;
  };

  const propose = (s: readonly number[]): number[][] => {
    const out: number[][] = [];
    for (let attempt = 0; out.length < o.batch && attempt < o.batch * 20; attempt++) {
      // Raw proposals are remembered too, so that a revisited neighbour costs no canonicalisation.
      const raw = neighbour(s);
      const rawKey = sequenceHash(raw);
      if (seen.has(rawKey)) continue;
      seen.add(rawKey);
      const candidate = canonical(raw);
      if (!candidate) continue;
      const key = sequenceHash(candidate);
      if (key !== rawKey) {
        if (seen.has(key)) continue;
        seen.add(key);
      }
      out.push(candidate);
    }
    return out;
  };

  const freshStart = async (tokens?: readonly number[]): Promise<Candidate> => {
    seen = new Set();
    let ids = tokens?.length ? canonical(tokens.slice(0, o.length)) : undefined;
    for (let attempt = 0; !ids; attempt++) {
      const random = Array.from({ length: o.length }, () => newToken());
      ids = attempt < 100 ? canonical(random) : random;
    }
    seen.add(sequenceHash(ids));
    return (await evaluate([ids]))[0];
  };

  const progress = (): HillClimbProgress => ({
    steps,
    totalSteps: o.steps,
    evaluations,
    bestScore: best ? best.score : null,
    bestText: best ? textOf(best) : null,
  });

  let current = await freshStart(o.start);
  let stale = 0;
  let stopReason: StopReason = 'steps';
  await o.onProgress?.(progress());
  while (steps < o.steps) {
    if (await o.shouldStop?.()) {
      stopReason = 'cancelled';
      break;
    }
    if (o.now() - started >= o.timeLimitMs) {
      stopReason = 'time';
      break;
    }
    const proposals = propose(current.ids);
    const scored = proposals.length > 0 ? await evaluate(proposals) : [];
    steps += 1;
    const top = scored.reduce<Candidate | undefined>((a, b) => (!a || b.value > a.value ? b : a), undefined);
    if (top && top.value > current.value) {
      current = top;
      stale = 0;
    } else {
      stale += 1;
    }
    curve.push(best!.score);
    if (seen.size > MAX_REMEMBERED) seen = new Set([sequenceHash(current.ids)]);
    if (distinct.size > Math.max(4 * o.topN, 2000)) floor = prune(distinct, o.topN, textOf, keyOf);
    await o.onProgress?.(progress());
    if (stale >= o.patience || proposals.length === 0) {
      if (restartsUsed >= o.restarts) {
        stopReason = 'plateau';
        break;
      }
      restartsUsed += 1;
      current = await freshStart();
      stale = 0;
    }
  }
  const winner = best!;
  return {
    text: textOf(winner),
    score: winner.score,
    ids: winner.ids,
    top: ranked(distinct, o.topN, textOf).map((candidate) => ({
      text: textOf(candidate),
      score: candidate.score,
      ids: candidate.ids,
    })),
    curve,
    steps,
    evaluations,
    restartsUsed,
    stopReason,
  };
}

/**
 * A 53-bit hash of a token sequence (two 32-bit FNV-1a lanes over the ids and the length), for the
 * set of proposed sequences: numbers cost the climb far less than joined strings, and among the
 * 200,000 sequences a climb remembers at most, a collision (which only skips one proposal) has a
 * chance of about 2e-6.
 */
export function sequenceHash(ids: readonly number[]): number {
  let a = 0x811c9dc5 ^ ids.length;
  let b = 0x01000193 ^ Math.imul(ids.length, 0x9e3779b1);
  for (const id of ids) {
    a = Math.imul(a ^ id, 0x01000193);
    a ^= a >>> 15;
    b = Math.imul(b ^ (id + 0x7f4a7c15), 0x85ebca6b);
    b ^= b >>> 13;
  }
  return (a >>> 0) * 0x200000 + ((b >>> 0) & 0x1fffff);
}

function ranked(distinct: Map<string, Candidate>, n: number, textOf: (c: Candidate) => string): Candidate[] {
  return [...distinct.values()]
    .sort((a, b) => b.value - a.value || textOf(a).localeCompare(textOf(b)))
    .slice(0, n);
}

/**
 * Keeps the best `n` distinct texts only (bounded memory on long searches); returns the lowest
 * value kept once `n` are kept (-Infinity before).
 */
function prune(
  distinct: Map<string, Candidate>,
  n: number,
  textOf: (c: Candidate) => string,
  keyOf: (c: Candidate) => string,
): number {
  const keep = ranked(distinct, n, textOf);
  distinct.clear();
  for (const candidate of keep) distinct.set(keyOf(candidate), candidate);
  return keep.length === n ? keep[n - 1].value : -Infinity;
}
