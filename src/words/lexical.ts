/**
 * Lexical-neuron detection: how much of a neuron's response over the vocabulary is explained by
 * the word's spelling rather than by its meaning.
 *
 * For a sample of n vocabulary words, y_c ∈ R^n is neuron c's centred response to the rastered
 * words. Two designs describe the same words:
 *   - spelling S: hashed counts of character 1–3-grams of "^word$" (so 1–2-character prefixes and
 *     suffixes are among them), hashed 3-character prefix and suffix, length, length², spaces and
 *     share of capitals, plus a bias — `buckets` + 5 columns, sparse;
 *   - meaning M: the model's text embedding of the word, unit-normalised, plus a bias (D + 1 columns).
 * For each design X, a multi-output ridge regression B = (XᵀX + λI)⁻¹ XᵀY is fitted for all C
 * neurons at once (ridge.ts: one Cholesky factorisation per fold shared by every neuron; the dual
 * form when there are fewer words than columns), with
 * λ = lambdaScale · tr(XᵀX)/p (a multiple of the mean eigenvalue of the training Gram matrix; the
 * multiple is chosen per design from 0.01, 0.1, 1, 10 by the mean cross-validated R² of 64 evenly
 * spaced neurons). Its k-fold cross-validated R² per neuron is
 * R²_c = 1 − Σ_r (y_rc − ŷ_rc)² / Σ_r y_rc², with ŷ_r predicted by the fold that did not see row r.
 * The lexical score is the spelling R² alone,
 *
 *     score_c = R²_c(spelling),
 *
 * and a neuron is flagged lexical when score_c ≥ threshold (default 0.35; see docs/lexical-neurons.md).
 * R²_c(meaning) is reported beside it but does not enter the score: for words the model's text side
 * knows, CLIP has learnt to match a rendered word with the word's text, so the text embedding predicts
 * a word-reading neuron's response as well as the spelling does. An earlier score, R²(spelling) −
 * R²(meaning), therefore measured how well the text side knows the vocabulary rather than the neuron:
 * on the embedded model it flagged 1 of 512 neurons on its own words (none of them lexical by
 * construction) and 292 on the default English list, which its text side does not know. Measured
 * against the toy world's truth (scripts/toyworld-lexical-truth.ts), the spelling R² separates the
 * lexical neurons on both vocabularies (ROC AUC 0.84 and 0.83), the difference only on English (0.81;
 * 0.28 on its own words).
 * Cost per design: O(n·nnz·p) for the Gram matrices, O(nnz·C) per row for XᵀY and the predictions,
 * O(k·p²·C) for the solves.
 */

import { ridgeCrossValidatedR2, type SparseRow } from './ridge.js';

export const DEFAULT_LEXICAL_THRESHOLD = 0.35;
export const DEFAULT_BUCKETS = 512;
export const DEFAULT_FOLDS = 5;
export const DEFAULT_LAMBDA_SCALE = 1;
/** At most this many words (evenly spaced over the vocabulary) enter the regressions. */
export const DEFAULT_MAX_WORDS = 5000;

export interface LexicalScores {
  /** ridge-cv-r2-spelling: score = R²(spelling); indexes built before it hold the difference. */
  method: 'ridge-cv-r2-spelling' | 'ridge-cv-r2-difference';
  words: number;
  folds: number;
  buckets: number;
  /** λ / (mean eigenvalue of XᵀX) used for each design. */
  lambdaScale: { spelling: number; meaning: number };
  /** Cross-validated R² from spelling, per neuron. */
  spelling: number[];
  /** Cross-validated R² from meaning (text embeddings), per neuron. */
  meaning: number[];
  /** The lexical score per neuron: R²(spelling) (see lexicalScore for indexes built earlier). */
  score: number[];
}

/** FNV-1a over a string's UTF-16 code units. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The spelling design row of a word: `buckets` hashed n-gram counts, then 4 shape features and a bias. */
export function spellingFeatures(word: string, buckets = DEFAULT_BUCKETS): SparseRow {
  const counts = new Map<number, number>();
  const add = (column: number, amount: number) => counts.set(column, (counts.get(column) ?? 0) + amount);
  const marked = `^${word}$`;
  for (let n = 1; n <= 3; n++) {
    for (let i = 0; i + n <= marked.length; i++) add(hash(`${n}:${marked.slice(i, i + n)}`) % buckets, 1);
  }
  add(hash(`prefix:${word.slice(0, 3)}`) % buckets, 1);
  add(hash(`suffix:${word.slice(-3)}`) % buckets, 1);
  const length = word.length / 10;
  const capitals = [...word].filter((ch) => ch !== ch.toLowerCase()).length / Math.max(1, word.length);
  add(buckets, length);
  add(buckets + 1, length * length);
  add(buckets + 2, word.split(' ').length - 1);
  add(buckets + 3, capitals);
  add(buckets + 4, 1);
  const index = Int32Array.from([...counts.keys()].sort((a, b) => a - b));
  return { index, value: Float64Array.from(index, (column) => counts.get(column) as number) };
}

/** Columns of the spelling design for `buckets` hash buckets. */
export const spellingColumns = (buckets = DEFAULT_BUCKETS) => buckets + 5;

/** The meaning design row: the unit-normalised embedding and a bias (D + 1 columns). */
export function meaningFeatures(embedding: Float32Array): SparseRow {
  const D = embedding.length;
  let norm = 0;
  for (const value of embedding) norm += value * value;
  norm = Math.sqrt(norm) || 1;
  const value = new Float64Array(D + 1);
  for (let j = 0; j < D; j++) value[j] = embedding[j] / norm;
  value[D] = 1;
  return { index: Int32Array.from({ length: D + 1 }, (_, j) => j), value };
}

/** Rows of the vocabulary used for detection: all of them, or `maxWords` evenly spaced. */
export function lexicalSample(rows: number, maxWords = DEFAULT_MAX_WORDS): number[] {
  if (rows <= maxWords) return Array.from({ length: rows }, (_, i) => i);
  return Array.from({ length: maxWords }, (_, j) => Math.floor((j * rows) / maxWords));
}

export interface LexicalInput {
  words: readonly string[];
  /** Centred responses [n, C] of the words, row-major. */
  responses: Float32Array;
  columns: number;
  /** Text embeddings of the same words. */
  embeddings: readonly Float32Array[];
  buckets?: number;
  folds?: number;
  /** A fixed λ scale for both designs; by default each design's is chosen from LAMBDA_GRID. */
  lambdaScale?: number;
  signal?: AbortSignal;
}

/** Candidate λ scales (× the mean eigenvalue of the training Gram matrix). */
export const LAMBDA_GRID = [0.01, 0.1, 1, 10];
/** Neurons (evenly spaced) on which the λ scale of a design is chosen. */
const LAMBDA_PROBE_NEURONS = 64;

/**
 * The λ scale of LAMBDA_GRID with the highest mean cross-validated R² over a probe of at most
 * LAMBDA_PROBE_NEURONS evenly spaced neurons (one λ per design, shared by every neuron).
 */
export async function chooseLambdaScale(
  X: readonly SparseRow[],
  p: number,
  Y: Float32Array,
  C: number,
  folds: number,
  signal?: AbortSignal,
): Promise<number> {
  const probe = Array.from({ length: Math.min(C, LAMBDA_PROBE_NEURONS) }, (_, j) =>
    Math.floor((j * C) / Math.min(C, LAMBDA_PROBE_NEURONS)),
  );
  const n = X.length;
  const Yp = new Float32Array(n * probe.length);
  for (let r = 0; r < n; r++) probe.forEach((c, j) => (Yp[r * probe.length + j] = Y[r * C + c]));
  let best = DEFAULT_LAMBDA_SCALE;
  let bestR2 = -Infinity;
  for (const lambdaScale of LAMBDA_GRID) {
    const r2 = await ridgeCrossValidatedR2(X, p, Yp, probe.length, { folds, lambdaScale, signal });
    const mean = r2.reduce((sum, value) => sum + value, 0) / r2.length;
    if (mean > bestR2) [best, bestR2] = [lambdaScale, mean];
  }
  return best;
}

/** Lexical scores of every neuron (see the module comment). */
export async function detectLexicalNeurons(input: LexicalInput): Promise<LexicalScores> {
  const buckets = input.buckets ?? DEFAULT_BUCKETS;
  const folds = input.folds ?? DEFAULT_FOLDS;
  const { words, columns: C } = input;
  const Y = Float32Array.from(input.responses);
  for (let c = 0; c < C; c++) {
    let sum = 0;
    for (let r = 0; r < words.length; r++) sum += Y[r * C + c];
    const mean = sum / words.length;
    for (let r = 0; r < words.length; r++) Y[r * C + c] -= mean;
  }
  const spellingRows = words.map((word) => spellingFeatures(word, buckets));
  const meaningRows = input.embeddings.map(meaningFeatures);
  const spellingP = spellingColumns(buckets);
  const meaningP = input.embeddings[0].length + 1;
  const lambdaScale = {
    spelling:
      input.lambdaScale ?? (await chooseLambdaScale(spellingRows, spellingP, Y, C, folds, input.signal)),
    meaning: input.lambdaScale ?? (await chooseLambdaScale(meaningRows, meaningP, Y, C, folds, input.signal)),
  };
  const spelling = await ridgeCrossValidatedR2(spellingRows, spellingP, Y, C, {
    folds,
    lambdaScale: lambdaScale.spelling,
    signal: input.signal,
  });
  const meaning = await ridgeCrossValidatedR2(meaningRows, meaningP, Y, C, {
    folds,
    lambdaScale: lambdaScale.meaning,
    signal: input.signal,
  });
  const round = (value: number) => Math.round(value * 1e6) / 1e6;
  return {
    method: 'ridge-cv-r2-spelling',
    words: words.length,
    folds,
    buckets,
    lambdaScale,
    spelling: Array.from(spelling, round),
    meaning: Array.from(meaning, round),
    score: Array.from(spelling, round),
  };
}

/**
 * The lexical score of every neuron: R²(spelling), also for an index built when the score was the
 * difference R²(spelling) − R²(meaning) (its header holds both R² values), so no rebuild is needed.
 */
export function lexicalScore(scores: LexicalScores): number[] {
  return scores.spelling;
}

/** Neurons whose lexical score reaches `threshold`, ascending. */
export function lexicalNeurons(scores: LexicalScores, threshold = DEFAULT_LEXICAL_THRESHOLD): number[] {
  return lexicalScore(scores).flatMap((score, neuron) => (score >= threshold ? [neuron] : []));
}
