/**
 * k-fold cross-validated R² of a multi-output ridge regression, for every column of Y at once.
 *
 * Y [n, C] (row-major, columns centred by the caller) is regressed on the rows x_r ∈ R^p of a
 * sparse design X; row r belongs to fold r mod k. For the fold f, with T the other rows,
 *   primal (n ≥ p):  B = (X_Tᵀ X_T + λI)⁻¹ X_Tᵀ Y_T,          ŷ_r = x_rᵀ B
 *   dual   (n < p):  α = (X_T X_Tᵀ + λI)⁻¹ Y_T,               ŷ_r = Σ_{t∈T} (x_r·x_t) α_t
 * which are the same predictions (push-through identity), with λ = lambdaScale · tr(X_Tᵀ X_T)/p in
 * both. One Cholesky factor per fold serves every column; the columns are solved in blocks, and
 * the work pauses for the event loop every ~15 ms so that a server stays responsive (and stops
 * when `signal` is aborted). R²_c = 1 − Σ_r (y_rc − ŷ_rc)² / Σ_r y_rc² over the out-of-fold ŷ.
 */
import { yieldToEventLoop } from '../threads/event-loop.js';

/** A row of a design matrix: the columns where it is non-zero (ascending) and their values. */
export interface SparseRow {
  index: Int32Array;
  value: Float64Array;
}

export interface RidgeOptions {
  folds?: number;
  /** λ in units of the mean eigenvalue tr(XᵀX)/p of the training Gram matrix. */
  lambdaScale?: number;
  signal?: AbortSignal;
}

const COLUMN_BLOCK = 64;
const SLICE_MS = 15;

/** An async checkpoint: yields to the event loop when the current slice is used up; honours `signal`. */
function pacer(signal?: AbortSignal): () => Promise<void> {
  let sliceStart = performance.now();
  return async () => {
    signal?.throwIfAborted();
    if (performance.now() - sliceStart < SLICE_MS) return;
    await yieldToEventLoop();
    signal?.throwIfAborted();
    sliceStart = performance.now();
  };
}

export function ridgeCrossValidatedR2(
  X: readonly SparseRow[],
  p: number,
  Y: Float32Array,
  C: number,
  options: RidgeOptions = {},
): Promise<Float64Array> {
  return X.length < p ? dualRidgeR2(X, p, Y, C, options) : primalRidgeR2(X, p, Y, C, options);
}

function foldCount(n: number, folds = 5): number {
  return Math.max(2, Math.min(folds, n));
}

function lambdaFor(trace: number, p: number, lambdaScale = 1): number {
  return Math.max(lambdaScale * (trace / p), 1e-9);
}

export async function primalRidgeR2(
  X: readonly SparseRow[],
  p: number,
  Y: Float32Array,
  C: number,
  options: RidgeOptions = {},
): Promise<Float64Array> {
  const pause = pacer(options.signal);
  const n = X.length;
  const k = foldCount(n, options.folds);
  const gram = Array.from({ length: k }, () => new Float64Array(p * p));
  for (let r = 0; r < n; r++) {
    await pause();
    const { index, value } = X[r];
    const G = gram[r % k];
    for (let a = 0; a < index.length; a++) {
      const ia = index[a] * p;
      for (let b = 0; b < index.length; b++) G[ia + index[b]] += value[a] * value[b];
    }
  }
  const total = sumOf(gram);
  const factors: Float64Array[] = [];
  for (const foldGram of gram) {
    const A = total.map((value, i) => value - foldGram[i]);
    let trace = 0;
    for (let i = 0; i < p; i++) trace += A[i * p + i];
    const lambda = lambdaFor(trace, p, options.lambdaScale);
    for (let i = 0; i < p; i++) A[i * p + i] += lambda;
    choleskyFactorInPlace(A, p);
    factors.push(A);
    await pause();
  }
  const sse = new Float64Array(C);
  for (let c0 = 0; c0 < C; c0 += COLUMN_BLOCK) {
    const m = Math.min(COLUMN_BLOCK, C - c0);
    const cross = Array.from({ length: k }, () => new Float64Array(p * m));
    for (let r = 0; r < n; r++) {
      if ((r & 15) === 15) await pause();
      const { index, value } = X[r];
      const H = cross[r % k];
      for (let a = 0; a < index.length; a++) {
        const base = index[a] * m;
        for (let c = 0; c < m; c++) H[base + c] += value[a] * Y[r * C + c0 + c];
      }
    }
    const H = sumOf(cross);
    const prediction = new Float64Array(m);
    for (let f = 0; f < k; f++) {
      await pause();
      const B = H.map((value, i) => value - cross[f][i]);
      choleskySubstituteInPlace(factors[f], p, B, m);
      for (let r = f; r < n; r += k) {
        const { index, value } = X[r];
        prediction.fill(0);
        for (let a = 0; a < index.length; a++) {
          const base = index[a] * m;
          for (let c = 0; c < m; c++) prediction[c] += value[a] * B[base + c];
        }
        for (let c = 0; c < m; c++) sse[c0 + c] += (Y[r * C + c0 + c] - prediction[c]) ** 2;
      }
    }
  }
  return rSquared(sse, Y, n, C);
}

export async function dualRidgeR2(
  X: readonly SparseRow[],
  p: number,
  Y: Float32Array,
  C: number,
  options: RidgeOptions = {},
): Promise<Float64Array> {
  const pause = pacer(options.signal);
  const n = X.length;
  const k = foldCount(n, options.folds);
  const K = new Float64Array(n * n); // x_r·x_s
  for (let r = 0; r < n; r++) {
    await pause();
    for (let s = 0; s <= r; s++) K[r * n + s] = K[s * n + r] = sparseDot(X[r], X[s]);
  }
  const sse = new Float64Array(C);
  for (let f = 0; f < k; f++) {
    const train = Array.from({ length: n }, (_, r) => r).filter((r) => r % k !== f);
    const test = Array.from({ length: n }, (_, r) => r).filter((r) => r % k === f);
    const t = train.length;
    const A = new Float64Array(t * t);
    let trace = 0;
    train.forEach((r, i) => {
      trace += K[r * n + r];
      train.forEach((s, j) => (A[i * t + j] = K[r * n + s]));
    });
    const lambda = lambdaFor(trace, p, options.lambdaScale);
    for (let i = 0; i < t; i++) A[i * t + i] += lambda;
    choleskyFactorInPlace(A, t);
    await pause();
    for (let c0 = 0; c0 < C; c0 += COLUMN_BLOCK) {
      const m = Math.min(COLUMN_BLOCK, C - c0);
      const alpha = new Float64Array(t * m);
      train.forEach((r, i) => {
        for (let c = 0; c < m; c++) alpha[i * m + c] = Y[r * C + c0 + c];
      });
      choleskySubstituteInPlace(A, t, alpha, m);
      const prediction = new Float64Array(m);
      for (const r of test) {
        prediction.fill(0);
        for (let i = 0; i < t; i++) {
          const kri = K[r * n + train[i]];
          if (kri === 0) continue;
          for (let c = 0; c < m; c++) prediction[c] += kri * alpha[i * m + c];
        }
        for (let c = 0; c < m; c++) sse[c0 + c] += (Y[r * C + c0 + c] - prediction[c]) ** 2;
      }
      await pause();
    }
  }
  return rSquared(sse, Y, n, C);
}

function rSquared(sse: Float64Array, Y: Float32Array, n: number, C: number): Float64Array {
  const sst = new Float64Array(C);
  for (let r = 0; r < n; r++) for (let c = 0; c < C; c++) sst[c] += Y[r * C + c] ** 2;
  return sse.map((error, c) => (sst[c] > 0 ? 1 - error / sst[c] : 0));
}

function sparseDot(a: SparseRow, b: SparseRow): number {
  let sum = 0;
  for (let i = 0, j = 0; i < a.index.length && j < b.index.length;) {
    if (a.index[i] === b.index[j]) sum += a.value[i++] * b.value[j++];
    else if (a.index[i] < b.index[j]) i++;
    else j++;
  }
  return sum;
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
 * Given L in the lower triangle of A [p, p], overwrites R [p, m] with (LLᵀ)⁻¹ R: forward L Z = R,
 * then backward Lᵀ B = Z, row by row so the inner loop runs over the m right-hand sides.
 */
export function choleskySubstituteInPlace(A: Float64Array, p: number, R: Float64Array, m: number): void {
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
