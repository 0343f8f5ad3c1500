/**
 * Multinomial (softmax) L1-regularised logistic regression: all concepts fitted at once, the option
 * next to one-vs-rest. For K classes, coefficients B (K × p, on standardised features) and
 * intercepts b, with η_ik = b_k + x_i·B_k, it minimises
 *
 *     F(b, B) = (1/n) Σ_i [ log Σ_k e^{η_ik} − η_{i,y_i} ] + λ Σ_k ‖B_k‖₁ ,
 *
 * scikit-learn's multinomial `LogisticRegression(penalty='l1', C)` with C = 1/(n·λ).
 *
 * Solver: block-coordinate proximal Newton over the classes (glmnet's "ungrouped" multinomial).
 * With the other classes fixed, class k's part of the loss is a binary logistic loss with offsets;
 * its quadratic model (residuals r_i = (p_ik − y_ik)/n, weights w_i = p_ik(1 − p_ik)/n) is
 * minimised by coordinate descent on a working set (the nonzeros and the coordinates that violate
 * optimality), then an Armijo line search on F takes the step. After each sweep over the classes
 * the KKT conditions over all K·p coordinates decide whether to stop:
 *
 *     B_kj ≠ 0:  G_kj + λ sign B_kj = 0,     B_kj = 0:  |G_kj| ≤ λ,     Σ_i (p_ik − y_ik) = 0,
 *
 * with G_kj = (1/n) Σ_i x_ij (p_ik − y_ik). The intercepts are defined up to a common shift; the
 * returned ones sum to zero.
 */
import {
  checkClassLabels,
  DEFAULT_TOL,
  kktViolation,
  MIN_WEIGHT,
  WorkBudget,
  type Design,
  type SolverOptions,
} from './design.js';

export interface MultinomialFit {
  lambda: number;
  /** Coefficients per class on the standardised features. */
  coef: Float64Array[];
  intercept: Float64Array;
  objective: number;
  /** Sweeps over the classes. */
  iterations: number;
  converged: boolean;
  kktViolation: number;
}

const DEFAULT_MAX_SWEEPS = 1000;
const MAX_CD_PASSES = 100;

/** Row-major class probabilities P[i·K + k] and the mean loss for predictors η (same layout). */
export function softmaxLoss(
  eta: Float64Array,
  labels: readonly number[],
  K: number,
  P?: Float64Array,
): number {
  const n = labels.length;
  let loss = 0;
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let k = 0; k < K; k++) max = Math.max(max, eta[i * K + k]);
    let sum = 0;
    for (let k = 0; k < K; k++) sum += Math.exp(eta[i * K + k] - max);
    loss += max + Math.log(sum) - eta[i * K + labels[i]];
    if (P) for (let k = 0; k < K; k++) P[i * K + k] = Math.exp(eta[i * K + k] - max) / sum;
  }
  return loss / n;
}

/** G_kj for one class (and the intercept's component) from probabilities P. */
function classGradient(design: Design, labels: readonly number[], P: Float64Array, K: number, k: number) {
  const { n, p, X } = design;
  const residual = new Float64Array(n);
  let interceptGradient = 0;
  for (let i = 0; i < n; i++) {
    residual[i] = (P[i * K + k] - (labels[i] === k ? 1 : 0)) / n;
    interceptGradient += residual[i];
  }
  const gradient = new Float64Array(p);
  for (let j = 0; j < p; j++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += X[j * n + i] * residual[i];
    gradient[j] = sum;
  }
  return { residual, gradient, interceptGradient };
}

/** λ_max: the smallest λ at which B = 0 (with b_k = log of class k's share) is optimal. */
export function multinomialLambdaMax(design: Design, labels: readonly number[], K: number): number {
  const { n } = design;
  const share = new Float64Array(K);
  for (const c of labels) share[c] += 1 / n;
  const P = new Float64Array(n * K);
  for (let i = 0; i < n; i++) P.set(share, i * K);
  let max = 0;
  for (let k = 0; k < K; k++) {
    for (const g of classGradient(design, labels, P, K, k).gradient) max = Math.max(max, Math.abs(g));
  }
  return max;
}

/** η (row-major, n × K) of a standardised design under coefficients and intercepts. */
export function multinomialPredictor(design: Design, coef: readonly Float64Array[], intercept: Float64Array) {
  const { n, p, X } = design;
  const K = coef.length;
  const eta = new Float64Array(n * K);
  for (let k = 0; k < K; k++) {
    for (let i = 0; i < n; i++) eta[i * K + k] = intercept[k];
    for (let j = 0; j < p; j++) {
      const c = coef[k][j];
      if (c !== 0) for (let i = 0; i < n; i++) eta[i * K + k] += c * X[j * n + i];
    }
  }
  return eta;
}

const l1 = (coef: readonly Float64Array[]) =>
  coef.reduce((s, c) => s + c.reduce((a, v) => a + Math.abs(v), 0), 0);

/**
 * Solves the multinomial L1 problem at one λ (warm-started from `warm` when given). Each sweep over
 * the classes is one pass of `options.budget`; at most `options.maxIter` sweeps.
 */
export function fitMultinomial(
  design: Design,
  labels: readonly number[],
  K: number,
  lambda: number,
  options: SolverOptions = {},
  warm?: Pick<MultinomialFit, 'coef' | 'intercept'>,
): MultinomialFit {
  const { n, p } = design;
  checkClassLabels(labels, n, K);
  if (!(lambda >= 0)) throw new RangeError('lambda must be ≥ 0');
  const tol = options.tol ?? DEFAULT_TOL;
  const maxSweeps = options.maxIter ?? DEFAULT_MAX_SWEEPS;
  const budget = options.budget ?? new WorkBudget();
  const coef = warm
    ? warm.coef.map((c) => Float64Array.from(c))
    : Array.from({ length: K }, () => new Float64Array(p));
  const intercept = warm ? Float64Array.from(warm.intercept) : new Float64Array(K);
  if (!warm) for (const c of labels) intercept[c] += 1 / n;
  if (!warm) for (let k = 0; k < K; k++) intercept[k] = Math.log(intercept[k]);
  const eta = multinomialPredictor(design, coef, intercept);
  // Working sets: the nonzeros, plus every coordinate a full KKT pass finds violating.
  const working = coef.map((c) => new Set(Array.from(c.keys()).filter((j) => c[j] !== 0)));
  const state: SolverState = {
    design,
    labels,
    K,
    lambda,
    tol,
    coef,
    intercept,
    eta,
    rowMax: new Float64Array(n),
    rowSum: new Float64Array(n),
    l1: l1(coef),
  };
  let violation = Infinity;
  let sweeps = 0;
  while (sweeps < maxSweeps) {
    // Sweeps over the classes on the working sets until they satisfy KKT there...
    let inner = Infinity;
    while (sweeps < maxSweeps && inner > tol && budget.allows()) {
      sweeps += 1;
      budget.spend();
      inner = 0;
      refreshRows(state);
      for (let k = 0; k < K; k++) inner = Math.max(inner, updateClass(state, k, [...working[k]]));
    }
    // ...then one pass over every coordinate: done, or the violators join the working sets.
    const P = new Float64Array(n * K);
    softmaxLoss(eta, labels, K, P);
    violation = 0;
    let added = 0;
    for (let k = 0; k < K; k++) {
      const { gradient, interceptGradient } = classGradient(design, labels, P, K, k);
      violation = Math.max(violation, Math.abs(interceptGradient));
      for (let j = 0; j < p; j++) {
        const v = kktViolation(gradient[j], coef[k][j], lambda);
        violation = Math.max(violation, v);
        if (v > tol && !working[k].has(j)) {
          working[k].add(j);
          added += 1;
        }
      }
    }
    if (violation <= tol || (added === 0 && inner <= tol) || !budget.allows()) break;
  }
  const shift = intercept.reduce((a, b) => a + b, 0) / K;
  for (let k = 0; k < K; k++) intercept[k] -= shift;
  for (let i = 0; i < n; i++) for (let k = 0; k < K; k++) eta[i * K + k] -= shift;
  return {
    lambda,
    coef,
    intercept,
    objective: softmaxLoss(eta, labels, K) + lambda * l1(coef),
    iterations: sweeps,
    converged: violation <= tol,
    kktViolation: violation,
  };
}

interface SolverState {
  design: Design;
  labels: readonly number[];
  K: number;
  lambda: number;
  tol: number;
  coef: Float64Array[];
  intercept: Float64Array;
  eta: Float64Array;
  /** Per sample a reference m_i and S_i = Σ_k e^{η_ik − m_i}, updated as one class's η moves. */
  rowMax: Float64Array;
  rowSum: Float64Array;
  /** ‖B‖₁, kept up to date. */
  l1: number;
}

/** Recomputes every sample's reference and sum of exponentials (O(nK)). */
function refreshRows(state: SolverState): void {
  const { eta, K, rowMax, rowSum } = state;
  for (let i = 0; i < rowMax.length; i++) {
    let max = -Infinity;
    for (let k = 0; k < K; k++) max = Math.max(max, eta[i * K + k]);
    let sum = 0;
    for (let k = 0; k < K; k++) sum += Math.exp(eta[i * K + k] - max);
    rowMax[i] = max;
    rowSum[i] = sum;
  }
}

/**
 * The mean loss if class k's predictors were `etaK` (O(n)), with each sample's sum of
 * exponentials for it written to `sums`. A value far above a sample's reference would overflow:
 * then the rows are refreshed after the step (see updateClass).
 */
function lossWithClass(state: SolverState, k: number, etaK: Float64Array, sums: Float64Array): number {
  const { eta, K, labels, rowMax, rowSum } = state;
  const n = labels.length;
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const m = rowMax[i];
    const sum = rowSum[i] - Math.exp(eta[i * K + k] - m) + Math.exp(etaK[i] - m);
    sums[i] = sum;
    loss += m + Math.log(sum) - (labels[i] === k ? etaK[i] : eta[i * K + labels[i]]);
  }
  return loss / n;
}

/**
 * One proximal Newton step on class k over the coordinates `working` (and the intercept): coordinate
 * descent on the quadratic model, then an Armijo line search on F. Returns the largest KKT violation
 * on those coordinates before the step.
 */
function updateClass(state: SolverState, k: number, working: number[]): number {
  const { design, labels, K, lambda, tol, coef, intercept, eta, rowMax, rowSum } = state;
  const { n, X } = design;
  const current = Float64Array.from({ length: n }, (_, i) => eta[i * K + k]);
  const sums = new Float64Array(n);
  const F = lossWithClass(state, k, current, sums) + lambda * state.l1;
  const residual = new Float64Array(n);
  const w = new Float64Array(n);
  let interceptGradient = 0;
  for (let i = 0; i < n; i++) {
    const pk = Math.exp(current[i] - rowMax[i]) / rowSum[i];
    residual[i] = (pk - (labels[i] === k ? 1 : 0)) / n;
    interceptGradient += residual[i];
    w[i] = Math.max((pk * (1 - pk)) / n, MIN_WEIGHT);
  }
  const beta = coef[k];
  let violation = Math.abs(interceptGradient);
  for (const j of working) {
    let g = 0;
    for (let i = 0; i < n; i++) g += X[j * n + i] * residual[i];
    violation = Math.max(violation, kktViolation(g, beta[j], lambda));
  }
  if (violation <= tol) return violation;
  // Coordinate descent on the quadratic model: `next` holds β + δ, q = Xδ + δb.
  const next = working.map((j) => beta[j]);
  const q = new Float64Array(n);
  let deltaB = 0;
  const curvature = working.map((j) => {
    let h = 0;
    for (let i = 0; i < n; i++) h += w[i] * X[j * n + i] ** 2;
    return Math.max(h, MIN_WEIGHT);
  });
  const hB = w.reduce((a, b) => a + b, 0);
  // The quadratic model is solved only as finely as the step needs: to a tenth of the current
  // violation (never finer than tol).
  const enough = Math.max(tol, 0.1 * violation) ** 2;
  for (let pass = 0; pass < MAX_CD_PASSES; pass++) {
    let largest = 0;
    working.forEach((j, index) => {
      const h = curvature[index];
      let a = 0;
      for (let i = 0; i < n; i++) a += X[j * n + i] * (residual[i] + w[i] * q[i]);
      const z = next[index] - a / h;
      const updated = Math.sign(z) * Math.max(Math.abs(z) - lambda / h, 0);
      const change = updated - next[index];
      if (change !== 0) {
        next[index] = updated;
        for (let i = 0; i < n; i++) q[i] += change * X[j * n + i];
        largest = Math.max(largest, h * change * change);
      }
    });
    let a = 0;
    for (let i = 0; i < n; i++) a += residual[i] + w[i] * q[i];
    const change = -a / hB;
    deltaB += change;
    for (let i = 0; i < n; i++) q[i] += change;
    largest = Math.max(largest, hB * change * change);
    if (largest < enough) break;
  }
  // Armijo line search on F along the step.
  let l1Old = 0;
  let l1New = 0;
  working.forEach((j, index) => {
    l1Old += Math.abs(beta[j]);
    l1New += Math.abs(next[index]);
  });
  let decrease = lambda * (l1New - l1Old);
  for (let i = 0; i < n; i++) decrease += residual[i] * q[i];
  if (!(decrease < 0)) return violation;
  const trial = new Float64Array(n);
  for (let alpha = 1; alpha > 1e-12; alpha /= 2) {
    for (let i = 0; i < n; i++) trial[i] = current[i] + alpha * q[i];
    let l1Trial = 0;
    working.forEach((j, index) => (l1Trial += Math.abs(beta[j] + alpha * (next[index] - beta[j]))));
    const trialF = lossWithClass(state, k, trial, sums) + lambda * (state.l1 - l1Old + l1Trial);
    if (trialF <= F + 0.01 * alpha * decrease) {
      working.forEach((j, index) => (beta[j] += alpha * (next[index] - beta[j])));
      intercept[k] += alpha * deltaB;
      state.l1 += l1Trial - l1Old;
      let overflow = false;
      for (let i = 0; i < n; i++) {
        eta[i * K + k] = trial[i];
        rowSum[i] = sums[i];
        if (!(sums[i] < 1e100 && sums[i] > 1e-100) || trial[i] - rowMax[i] > 50) overflow = true;
      }
      if (overflow) refreshRows(state);
      return violation;
    }
  }
  return violation;
}
