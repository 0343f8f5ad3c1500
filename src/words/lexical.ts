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
 * neurons at once (one Cholesky factorisation per fold shared by every neuron), with
 * λ = lambdaScale · tr(XᵀX)/p (a multiple of the mean eigenvalue of the training Gram matrix; the
 * multiple is chosen per design from 0.01, 0.1, 1, 10 by the mean cross-validated R² of 64 evenly
 * spaced neurons). Its k-fold cross-validated R² per neuron is
 * R²_c = 1 − Σ_r (y_rc − ŷ_rc)² / Σ_r y_rc², with ŷ_r predicted by the fold that did not see row r.
 * The lexical score is
 *
 *     score_c = R²_c(spelling) − R²_c(meaning),
 *
 * and a neuron is flagged lexical when score_c ≥ threshold (default 0.25; see docs/lexical-neurons.md).
 * Cost per design: O(n·nnz·p) for the Gram matrices, O(nnz·C) per row for XᵀY and the predictions,
 * O(k·p²·C) for the solves.
 */

export const DEFAULT_LEXICAL_THRESHOLD = 0.25;
export const DEFAULT_BUCKETS = 512;
export const DEFAULT_FOLDS = 5;
export const DEFAULT_LAMBDA_SCALE = 1;
/** At most this many words (evenly spaced over the vocabulary) enter the regressions. */
export const DEFAULT_MAX_WORDS = 5000;

export interface LexicalScores {
  method: 'ridge-cv-r2-difference';
  words: number;
  folds: number;
  buckets: number;
  /** λ / (mean eigenvalue of XᵀX) used for each design. */
  lambdaScale: { spelling: number; meaning: number };
  /** Cross-validated R² from spelling, per neuron. */
  spelling: number[];
  /** Cross-validated R² from meaning (text embeddings), per neuron. */
  meaning: number[];
  /** spelling − meaning, per neuron. */
  score: number[];
}

/** A row of a design matrix: the columns where it is non-zero and their values. */
export interface SparseRow {
  index: Int32Array;
  value: Float64Array;
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

/** Neurons per block of the regressions; the event loop gets a turn between blocks. */
const COLUMN_BLOCK = 128;

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * k-fold cross-validated R² of a ridge regression of every column of Y [n, C] (row-major, centred
 * per column by the caller) on the rows of X (p columns). Row r belongs to fold r mod k. The k
 * Cholesky factors are computed once; the neurons are then solved in blocks of COLUMN_BLOCK, with
 * a turn of the event loop between blocks so that a server stays responsive.
 */
export async function ridgeCrossValidatedR2(
  X: readonly SparseRow[],
  p: number,
  Y: Float32Array,
  C: number,
  options: { folds?: number; lambdaScale?: number } = {},
): Promise<Float64Array> {
  const n = X.length;
  const k = Math.max(2, Math.min(options.folds ?? DEFAULT_FOLDS, n));
  const lambdaScale = options.lambdaScale ?? DEFAULT_LAMBDA_SCALE;
  const gram = Array.from({ length: k }, () => new Float64Array(p * p));
  for (let r = 0; r < n; r++) {
    const { index, value } = X[r];
    const G = gram[r % k];
    for (let a = 0; a < index.length; a++) {
      const ia = index[a] * p;
      for (let b = 0; b < index.length; b++) G[ia + index[b]] += value[a] * value[b];
    }
  }
  const total = sumOf(gram);
  const factors = gram.map((foldGram) => {
    const A = total.map((value, i) => value - foldGram[i]);
    let trace = 0;
    for (let i = 0; i < p; i++) trace += A[i * p + i];
    const lambda = Math.max(lambdaScale * (trace / p), 1e-9);
    for (let i = 0; i < p; i++) A[i * p + i] += lambda;
    choleskyFactorInPlace(A, p);
    return A;
  });
  const r2 = new Float64Array(C);
  for (let c0 = 0; c0 < C; c0 += COLUMN_BLOCK) {
    await yieldToEventLoop();
    const m = Math.min(COLUMN_BLOCK, C - c0);
    const cross = Array.from({ length: k }, () => new Float64Array(p * m));
    for (let r = 0; r < n; r++) {
      const { index, value } = X[r];
      const H = cross[r % k];
      const y = r * C + c0;
      for (let a = 0; a < index.length; a++) {
        const base = index[a] * m;
        for (let c = 0; c < m; c++) H[base + c] += value[a] * Y[y + c];
      }
    }
    const H = sumOf(cross);
    const sse = new Float64Array(m);
    const prediction = new Float64Array(m);
    for (let f = 0; f < k; f++) {
      const B = H.map((value, i) => value - cross[f][i]);
      choleskySubstituteInPlace(factors[f], p, B, m);
      for (let r = f; r < n; r += k) {
        const { index, value } = X[r];
        prediction.fill(0);
        for (let a = 0; a < index.length; a++) {
          const base = index[a] * m;
          for (let c = 0; c < m; c++) prediction[c] += value[a] * B[base + c];
        }
        for (let c = 0; c < m; c++) sse[c] += (Y[r * C + c0 + c] - prediction[c]) ** 2;
      }
    }
    for (let c = 0; c < m; c++) {
      let sst = 0;
      for (let r = 0; r < n; r++) sst += Y[r * C + c0 + c] ** 2;
      r2[c0 + c] = sst > 0 ? 1 - sse[c] / sst : 0;
    }
  }
  return r2;
}

/** Solves A B = R for a symmetric positive definite A [p, p]: R [p, m] becomes B, A becomes L. */
export function choleskySolveInPlace(A: Float64Array, p: number, R: Float64Array, m: number): void {
  choleskyFactorInPlace(A, p);
  choleskySubstituteInPlace(A, p, R, m);
}

/** A = LLᵀ: overwrites the lower triangle of A [p, p] with L. */
export function choleskyFactorInPlace(A: Float64Array, p: number): void {
  for (let j = 0; j < p; j++) {
    let diagonal = A[j * p + j];
    for (let q = 0; q < j; q++) diagonal -= A[j * p + q] ** 2;
    if (!(diagonal > 0)) throw new RangeError('matrix is not positive definite');
    const ljj = Math.sqrt(diagonal);
    A[j * p + j] = ljj;
    for (let i = j + 1; i < p; i++) {
      let sum = A[i * p + j];
      for (let q = 0; q < j; q++) sum -= A[i * p + q] * A[j * p + q];
      A[i * p + j] = sum / ljj;
    }
  }
}

/**
 * Given L (lower triangle of A), overwrites R [p, m] with (LLᵀ)⁻¹ R. Row-oriented substitutions
 * keep the inner loop over the m right-hand sides contiguous.
 */
export function choleskySubstituteInPlace(A: Float64Array, p: number, R: Float64Array, m: number): void {
  // L Z = R (forward), then Lᵀ B = Z (backward).
  for (let i = 0; i < p; i++) {
    const row = i * m;
    for (let q = 0; q < i; q++) {
      const l = A[i * p + q];
      if (l === 0) continue;
      for (let c = 0; c < m; c++) R[row + c] -= l * R[q * m + c];
    }
    const inverse = 1 / A[i * p + i];
    for (let c = 0; c < m; c++) R[row + c] *= inverse;
  }
  for (let i = p - 1; i >= 0; i--) {
    const row = i * m;
    for (let q = i + 1; q < p; q++) {
      const l = A[q * p + i];
      if (l === 0) continue;
      for (let c = 0; c < m; c++) R[row + c] -= l * R[q * m + c];
    }
    const inverse = 1 / A[i * p + i];
    for (let c = 0; c < m; c++) R[row + c] *= inverse;
  }
}

function sumOf(parts: readonly Float64Array[]): Float64Array {
  const total = new Float64Array(parts[0].length);
  for (const part of parts) for (let i = 0; i < part.length; i++) total[i] += part[i];
  return total;
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
    const r2 = await ridgeCrossValidatedR2(X, p, Yp, probe.length, { folds, lambdaScale });
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
    spelling: input.lambdaScale ?? (await chooseLambdaScale(spellingRows, spellingP, Y, C, folds)),
    meaning: input.lambdaScale ?? (await chooseLambdaScale(meaningRows, meaningP, Y, C, folds)),
  };
  const spelling = await ridgeCrossValidatedR2(spellingRows, spellingP, Y, C, {
    folds,
    lambdaScale: lambdaScale.spelling,
  });
  const meaning = await ridgeCrossValidatedR2(meaningRows, meaningP, Y, C, {
    folds,
    lambdaScale: lambdaScale.meaning,
  });
  const round = (value: number) => Math.round(value * 1e6) / 1e6;
  return {
    method: 'ridge-cv-r2-difference',
    words: words.length,
    folds,
    buckets,
    lambdaScale,
    spelling: Array.from(spelling, round),
    meaning: Array.from(meaning, round),
    score: Array.from(spelling, (value, c) => round(value - meaning[c])),
  };
}

/** Neurons whose lexical score reaches `threshold`, ascending. */
export function lexicalNeurons(scores: LexicalScores, threshold = DEFAULT_LEXICAL_THRESHOLD): number[] {
  return scores.score.flatMap((score, neuron) => (score >= threshold ? [neuron] : []));
}
