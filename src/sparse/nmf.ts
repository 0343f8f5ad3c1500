/**
 * Non-negative matrix factorisation by hierarchical alternating least squares (HALS; Cichocki and
 * Phan 2009), the factorisation behind the article's emotion atlas.
 *
 * For X ∈ R^{n×m}, X ≥ 0, and k factors it minimises
 *
 *     f(W, H) = ½ ‖X − W H‖²_F    over W ∈ R^{n×k}, H ∈ R^{k×m}, W, H ≥ 0,
 *
 * by exact minimisation in one column of W, then one row of H, at a time:
 *
 *     W_:r ← max(0, W_:r + [(X Hᵀ)_:r − W (H Hᵀ)_:r] / (H Hᵀ)_rr)
 *     H_r: ← max(0, H_r: + [(Wᵀ X)_r: − (Wᵀ W)_r: H] / (Wᵀ W)_rr)
 *
 * f never increases; iteration stops when its relative decrease falls below `tol`. f is evaluated as
 * ½(‖X‖² − 2 tr(Wᵀ X Hᵀ) + tr(WᵀW · HHᵀ)) without forming W H. The initialisation is seeded (uniform
 * entries scaled to the mean of X), so a factorisation is deterministic. At the end each row of H is
 * scaled to unit Euclidean norm and W takes the scale, so loadings compare across factors.
 */
import { mulberry32 } from './cross-validation.js';

export interface NmfOptions {
  components: number;
  maxIter?: number;
  tol?: number;
  seed?: number;
}

const EPS = 1e-12;

/** The estimator in scikit-learn's shape: `fitTransform(X)` returns W; H is `components_`. */
export class NMF {
  components_: Float64Array[] = [];
  /** ½‖X − WH‖²_F at the end. */
  objective_ = NaN;
  nIter_ = 0;
  converged_ = false;

  constructor(readonly params: NmfOptions) {}

  fitTransform(X: readonly ArrayLike<number>[]): Float64Array[] {
    const k = this.params.components;
    const maxIter = this.params.maxIter ?? 1000;
    const tol = this.params.tol ?? 1e-7;
    const n = X.length;
    const m = n ? X[0].length : 0;
    if (!(k >= 1) || k > Math.min(n, m))
      throw new RangeError(`components must be from 1 to ${Math.min(n, m)}`);
    let normX = 0;
    let meanX = 0;
    for (const row of X)
      for (let j = 0; j < m; j++) {
        if (!(row[j] >= 0)) throw new RangeError('NMF needs a non-negative matrix');
        normX += row[j] * row[j];
        meanX += row[j];
      }
    meanX /= n * m;
    const random = mulberry32(this.params.seed ?? 1);
    const scale = Math.sqrt(meanX / k) || 1;
    const W = Array.from({ length: n }, () => Float64Array.from({ length: k }, () => random() * scale));
    const H = Array.from({ length: k }, () => Float64Array.from({ length: m }, () => random() * scale));

    let previous = Infinity;
    let f = Infinity;
    let iterations = 0;
    let converged = false;
    while (iterations < maxIter) {
      iterations++;
      // W step: needs X Hᵀ (n×k) and H Hᵀ (k×k).
      const XHt = X.map((row) => Float64Array.from(H, (h) => dot(row, h, m)));
      const HHt = H.map((a) => Float64Array.from(H, (b) => dot(a, b, m)));
      for (let r = 0; r < k; r++) {
        const denominator = HHt[r][r] + EPS;
        for (let i = 0; i < n; i++) {
          let WHHt = 0;
          for (let s = 0; s < k; s++) WHHt += W[i][s] * HHt[s][r];
          W[i][r] = Math.max(0, W[i][r] + (XHt[i][r] - WHHt) / denominator);
        }
      }
      // H step: needs Wᵀ X (k×m) and Wᵀ W (k×k).
      const WtX = Array.from({ length: k }, () => new Float64Array(m));
      for (let i = 0; i < n; i++)
        for (let r = 0; r < k; r++) {
          const w = W[i][r];
          if (w !== 0) for (let j = 0; j < m; j++) WtX[r][j] += w * X[i][j];
        }
      const WtW = Array.from({ length: k }, (_, a) =>
        Float64Array.from({ length: k }, (_, b) => W.reduce((sum, row) => sum + row[a] * row[b], 0)),
      );
      for (let r = 0; r < k; r++) {
        const denominator = WtW[r][r] + EPS;
        for (let j = 0; j < m; j++) {
          let WtWH = 0;
          for (let s = 0; s < k; s++) WtWH += WtW[r][s] * H[s][j];
          H[r][j] = Math.max(0, H[r][j] + (WtX[r][j] - WtWH) / denominator);
        }
      }
      // f = ½(‖X‖² − 2 Σ_r (WᵀX)_r:·H_r: + Σ_rs (WᵀW)_rs (HHᵀ)_rs), with the updated H.
      let cross = 0;
      for (let r = 0; r < k; r++) cross += dot(WtX[r], H[r], m);
      let quadratic = 0;
      for (let r = 0; r < k; r++) for (let s = 0; s < k; s++) quadratic += WtW[r][s] * dot(H[r], H[s], m);
      f = Math.max(0, 0.5 * (normX - 2 * cross + quadratic));
      if (Number.isFinite(previous) && previous - f <= tol * Math.max(previous, EPS)) {
        converged = true;
        break;
      }
      previous = f;
    }
    for (let r = 0; r < k; r++) {
      const length = Math.sqrt(dot(H[r], H[r], m));
      if (length === 0) continue;
      for (let j = 0; j < m; j++) H[r][j] /= length;
      for (let i = 0; i < n; i++) W[i][r] *= length;
    }
    this.components_ = H;
    this.objective_ = f;
    this.nIter_ = iterations;
    this.converged_ = converged;
    return W;
  }
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>, length: number): number {
  let sum = 0;
  for (let j = 0; j < length; j++) sum += a[j] * b[j];
  return sum;
}
