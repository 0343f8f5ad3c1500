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
import { kktViolation, type Design, type SolverOptions } from './sparse-logistic.js';

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

const DEFAULT_TOL = 1e-7;
const DEFAULT_MAX_SWEEPS = 1000;
const MAX_CD_PASSES = 100;
const MIN_WEIGHT = 1e-10;

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

function checkLabels(labels: readonly number[], n: number, K: number) {
  if (labels.length !== n) throw new RangeError(`expected ${n} labels, got ${labels.length}`);
  const seen = new Uint8Array(K);
  for (const c of labels) {
    if (!Number.isInteger(c) || c < 0 || c >= K) throw new RangeError(`labels must be 0 … ${K - 1}`);
    seen[c] = 1;
  }
  if (seen.includes(0)) throw new RangeError('every class must have samples');
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

/** Largest KKT violation over every coordinate, at predictors η. */
export function multinomialKkt(
  design: Design,
  labels: readonly number[],
  K: number,
  fit: Pick<MultinomialFit, 'coef' | 'lambda'>,
  eta: Float64Array,
): number {
  const P = new Float64Array(labels.length * K);
  softmaxLoss(eta, labels, K, P);
  let worst = 0;
  for (let k = 0; k < K; k++) {
    const { gradient, interceptGradient } = classGradient(design, labels, P, K, k);
    worst = Math.max(worst, Math.abs(interceptGradient));
    for (let j = 0; j < design.p; j++)
      worst = Math.max(worst, kktViolation(gradient[j], fit.coef[k][j], fit.lambda));
  }
  return worst;
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

/** Solves the multinomial L1 problem at one λ (warm-started from `warm` when given). */
export function fitMultinomial(
  design: Design,
  labels: readonly number[],
  K: number,
  lambda: number,
  options: SolverOptions = {},
  warm?: Pick<MultinomialFit, 'coef' | 'intercept'>,
): MultinomialFit {
  const { n, p, X } = design;
  checkLabels(labels, n, K);
  if (!(lambda >= 0)) throw new RangeError('lambda must be ≥ 0');
  const tol = options.tol ?? DEFAULT_TOL;
  const maxSweeps = options.maxIter ?? DEFAULT_MAX_SWEEPS;
  const coef = warm
    ? warm.coef.map((c) => Float64Array.from(c))
    : Array.from({ length: K }, () => new Float64Array(p));
  const intercept = warm ? Float64Array.from(warm.intercept) : new Float64Array(K);
  if (!warm) for (const c of labels) intercept[c] += 1 / n;
  if (!warm) for (let k = 0; k < K; k++) intercept[k] = Math.log(intercept[k]);
  const eta = multinomialPredictor(design, coef, intercept);
  const P = new Float64Array(n * K);
  const q = new Float64Array(n); // change of η_k along the step
  const w = new Float64Array(n);
  let F = softmaxLoss(eta, labels, K, P) + lambda * l1(coef);
  let violation = Infinity;
  let sweeps = 0;
  while (sweeps < maxSweeps) {
    sweeps += 1;
    for (let k = 0; k < K; k++) {
      const loss = softmaxLoss(eta, labels, K, P);
      F = loss + lambda * l1(coef);
      const { residual, gradient } = classGradient(design, labels, P, K, k);
      for (let i = 0; i < n; i++) w[i] = Math.max((P[i * K + k] * (1 - P[i * K + k])) / n, MIN_WEIGHT);
      const beta = coef[k];
      const working: number[] = [];
      for (let j = 0; j < p; j++) if (beta[j] !== 0 || Math.abs(gradient[j]) > lambda) working.push(j);
      // Coordinate descent on the quadratic model: the step δ lives in `next` (β + δ) and q = Xδ + δb.
      const next = new Map<number, number>(working.map((j) => [j, beta[j]]));
      q.fill(0);
      let deltaB = 0;
      const curvature = working.map((j) => {
        let h = 0;
        for (let i = 0; i < n; i++) h += w[i] * X[j * n + i] ** 2;
        return Math.max(h, MIN_WEIGHT);
      });
      const hB = w.reduce((a, b) => a + b, 0);
      for (let pass = 0; pass < MAX_CD_PASSES; pass++) {
        let largest = 0;
        working.forEach((j, index) => {
          const h = curvature[index];
          let a = 0;
          for (let i = 0; i < n; i++) a += X[j * n + i] * (residual[i] + w[i] * q[i]);
          const old = next.get(j)!;
          const z = old - a / h;
          const updated = Math.sign(z) * Math.max(Math.abs(z) - lambda / h, 0);
          const change = updated - old;
          if (change !== 0) {
            next.set(j, updated);
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
        if (largest < tol * tol) break;
      }
      // Armijo line search on F along the step.
      let l1Old = 0;
      let l1New = 0;
      for (const j of working) {
        l1Old += Math.abs(beta[j]);
        l1New += Math.abs(next.get(j)!);
      }
      let decrease = lambda * (l1New - l1Old);
      for (let i = 0; i < n; i++) decrease += residual[i] * q[i];
      if (!(decrease < 0)) continue;
      const base = Float64Array.from({ length: n }, (_, i) => eta[i * K + k]);
      let alpha = 1;
      for (let trial = 0; trial < 40; trial++, alpha /= 2) {
        for (let i = 0; i < n; i++) eta[i * K + k] = base[i] + alpha * q[i];
        let l1Trial = 0;
        for (const j of working) l1Trial += Math.abs(beta[j] + alpha * (next.get(j)! - beta[j]));
        const trialF = softmaxLoss(eta, labels, K) + lambda * (l1(coef) - l1Old + l1Trial);
        if (trialF <= F + 0.01 * alpha * decrease) break;
        if (trial === 39) alpha = 0;
      }
      if (alpha === 0) {
        for (let i = 0; i < n; i++) eta[i * K + k] = base[i];
        continue;
      }
      for (const j of working) {
        const value = beta[j] + alpha * (next.get(j)! - beta[j]);
        beta[j] = Math.abs(value) < 1e-300 ? 0 : value;
      }
      intercept[k] += alpha * deltaB;
    }
    violation = multinomialKkt(design, labels, K, { coef, lambda }, eta);
    if (violation <= tol) break;
  }
  const shift = intercept.reduce((a, b) => a + b, 0) / K;
  for (let k = 0; k < K; k++) intercept[k] -= shift;
  for (let i = 0; i < n; i++) for (let k = 0; k < K; k++) eta[i * K + k] -= shift;
  F = softmaxLoss(eta, labels, K) + lambda * l1(coef);
  return {
    lambda,
    coef,
    intercept,
    objective: F,
    iterations: sweeps,
    converged: violation <= tol,
    kktViolation: violation,
  };
}
