/**
 * L1-regularised (lasso) logistic regression, the sparse code of the article's emotion analysis.
 *
 * For samples x_i ∈ R^p (scaled: each feature centred and divided by a scale, design.ts)
 * and labels y_i ∈ {0, 1}, with linear predictor η_i = β₀ + x_i·β, it minimises
 *
 *     F(β₀, β) = (1/n) Σ_i [ log(1 + e^{η_i}) − y_i η_i ] + λ ‖β‖₁ ,
 *
 * glmnet's scaling; the intercept β₀ is not penalised. (scikit-learn's `LogisticRegression(penalty=
 * 'l1', C)` minimises C·Σ loss + ‖β‖₁, the same problem with C = 1/(n·λ).)
 *
 * Solver: proximal Newton with coordinate descent, as newGLMNET (Yuan, Ho and Lin 2012, the L1
 * solver inside liblinear) and glmnet. Each outer step builds the quadratic model of the loss at the
 * current point, with gradient g_j = (1/n) Σ_i x_ij (p_i − y_i) and Hessian weights w_i = p_i(1 − p_i)/n,
 * minimises model + λ‖β‖₁ by cyclic coordinate descent (each coordinate a soft-threshold
 * S(z, λ/h_jj)), and takes the direction with an Armijo backtracking line search on F. The work
 * happens on a working set (the nonzero coefficients and any coordinate that violates optimality);
 * after it converges, one pass over all p features checks the KKT conditions
 *
 *     β_j ≠ 0:  g_j + λ sign(β_j) = 0,        β_j = 0:  |g_j| ≤ λ,        Σ_i (p_i − y_i) = 0,
 *
 * adds the violators and continues; features whose gradient bound (gradient-bounds.ts) already proves
 * their condition are skipped. `tol` bounds the largest violation at the returned solution.
 */
import {
  checkBinaryLabels,
  DEFAULT_TOL,
  kktViolation,
  linearPredictor,
  logit,
  logLoss,
  meanOf,
  MIN_WEIGHT,
  sigmoid,
  softThreshold,
  WorkBudget,
  type Design,
  type SolverOptions,
} from './design.js';
import { GradientBounds } from './gradient-bounds.js';

export interface BinaryFit {
  lambda: number;
  /** Coefficients on the scaled features (the ones λ‖β‖₁ penalises). */
  coef: Float64Array;
  intercept: number;
  objective: number;
  /** Proximal Newton steps taken. */
  iterations: number;
  converged: boolean;
  /** max over coordinates of the KKT violation at the returned point. */
  kktViolation: number;
  /** Upper bounds on every |g_j| at the returned point (exact where computed; used by a path's strong rule). */
  bounds: GradientBounds;
}

export interface WarmStart {
  coef: Float64Array;
  intercept: number;
  /** Features to start the working set with (the strong set of a path); nonzeros are always in. */
  workingSet?: Iterable<number>;
  /** Gradient bounds carried along a path (see GradientBounds). */
  bounds?: GradientBounds;
}

const DEFAULT_MAX_ITER = 500;
/** Largest working set whose Newton direction uses covariance updates (see newtonDirection). */
const COVARIANCE_MAX_FEATURES = 64;

/** F(β₀, β) for a given linear predictor. */
export function objective(
  eta: Float64Array,
  y: ArrayLike<number>,
  coef: Float64Array,
  lambda: number,
): number {
  let loss = 0;
  for (let i = 0; i < eta.length; i++) loss += logLoss(eta[i], y[i]);
  let l1 = 0;
  for (let j = 0; j < coef.length; j++) l1 += Math.abs(coef[j]);
  return loss / eta.length + lambda * l1;
}

/** The residuals r_i = (σ(η_i) − y_i)/n and their sum, the intercept's gradient. */
function residuals(y: ArrayLike<number>, eta: Float64Array) {
  const n = eta.length;
  const residual = new Float64Array(n);
  let interceptGradient = 0;
  for (let i = 0; i < n; i++) {
    residual[i] = (sigmoid(eta[i]) - y[i]) / n;
    interceptGradient += residual[i];
  }
  return { residual, interceptGradient };
}

/** g_j = (1/n) Σ_i x_ij (σ(η_i) − y_i) for every feature, and the intercept's component. */
export function lossGradient(design: Design, y: ArrayLike<number>, eta: Float64Array) {
  const { n, p, X } = design;
  const { residual, interceptGradient } = residuals(y, eta);
  const gradient = new Float64Array(p);
  for (let j = 0; j < p; j++) {
    const column = j * n;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += X[column + i] * residual[i];
    gradient[j] = sum;
  }
  return { gradient, interceptGradient, residual };
}

/** λ_max: the smallest λ at which β = 0 is optimal, max_j |(1/n) Σ_i x_ij (y_i − ȳ)|. */
export function lambdaMax(design: Design, y: ArrayLike<number>): number {
  const eta = new Float64Array(design.n).fill(logit(meanOf(y)));
  const { gradient } = lossGradient(design, y, eta);
  return gradient.reduce((max, g) => Math.max(max, Math.abs(g)), 0);
}

/** The solver's current point and scratch space (one fit). */
interface Point {
  design: Design;
  y: ArrayLike<number>;
  lambda: number;
  tol: number;
  beta: Float64Array;
  b0: number;
  eta: Float64Array;
  /** F at (b0, beta). */
  F: number;
  inWorking: Uint8Array;
  working: number[];
  iterations: number;
}

/** The quadratic model of the loss at the current point, on the working set. */
interface Model {
  /** Residuals (σ(η_i) − y_i)/n and Hessian weights p_i(1 − p_i)/n (floored). */
  residual: Float64Array;
  weight: Float64Array;
  sumWeight: number;
  /** The intercept's gradient, and per working coordinate its gradient, curvature and Σ_i w_i x_ij. */
  gb: number;
  g: Float64Array;
  h: Float64Array;
  wx: Float64Array;
  /** Largest KKT violation on the working set (and the intercept). */
  violation: number;
}

/** Solves the L1 logistic problem at one λ on a scaled design (see the module docstring). */
export function fitBinary(
  design: Design,
  y: ArrayLike<number>,
  lambda: number,
  options: SolverOptions = {},
  warm?: WarmStart,
): BinaryFit {
  const { n, p } = design;
  checkBinaryLabels(y, n);
  if (!(lambda >= 0)) throw new RangeError('lambda must be ≥ 0');
  const maxIter = options.maxIter ?? DEFAULT_MAX_ITER;
  const budget = options.budget ?? new WorkBudget();
  const beta = warm ? Float64Array.from(warm.coef) : new Float64Array(p);
  const b0 = warm ? warm.intercept : logit(meanOf(y));
  const eta = linearPredictor(design, beta, b0);
  const inWorking = new Uint8Array(p);
  for (let j = 0; j < p; j++) if (beta[j] !== 0) inWorking[j] = 1;
  for (const j of warm?.workingSet ?? []) inWorking[j] = 1;
  let bounds = warm?.bounds;
  if (!bounds) {
    const { gradient, residual } = lossGradient(design, y, eta);
    bounds = new GradientBounds(design, residual, gradient);
    // Cold start: the working set begins with the coordinates that violate optimality at β = 0.
    if (!warm) for (let j = 0; j < p; j++) if (Math.abs(gradient[j]) > lambda) inWorking[j] = 1;
  }
  const point: Point = {
    design,
    y,
    lambda,
    tol: options.tol ?? DEFAULT_TOL,
    beta,
    b0,
    eta,
    F: objective(eta, y, beta, lambda),
    inWorking,
    working: collect(inWorking),
    iterations: 0,
  };
  for (;;) {
    // Proximal Newton on the working set until its KKT conditions hold...
    while (point.iterations < maxIter && budget.allows()) {
      const model = quadraticModel(point);
      if (model.violation <= point.tol) break;
      point.iterations++;
      budget.spend();
      const { d, db, Xd } = newtonDirection(point, model);
      if (!lineSearch(point, model, d, db, Xd)) break; // no further descent at this precision
    }
    // ...then one pass over all features: add the KKT violators, or stop.
    const { violation, added } = kktPass(point, bounds);
    if (added === 0 || point.iterations >= maxIter || !budget.allows()) {
      const eta = linearPredictor(design, point.beta, point.b0); // drop accumulated rounding in η
      return {
        lambda,
        coef: point.beta,
        intercept: point.b0,
        objective: objective(eta, y, point.beta, lambda),
        iterations: point.iterations,
        converged: violation <= point.tol,
        kktViolation: violation,
        bounds,
      };
    }
    point.working = collect(inWorking);
  }
}

/** Residuals, weights, and the working set's gradient and curvature at the current point. */
function quadraticModel(point: Point): Model {
  const { design, y, eta, beta, lambda, working } = point;
  const { n, X } = design;
  const residual = new Float64Array(n);
  const weight = new Float64Array(n);
  let sumWeight = 0;
  let gb = 0;
  for (let i = 0; i < n; i++) {
    const prob = sigmoid(eta[i]);
    residual[i] = (prob - y[i]) / n;
    weight[i] = Math.max(prob * (1 - prob), MIN_WEIGHT) / n;
    sumWeight += weight[i];
    gb += residual[i];
  }
  const m = working.length;
  const g = new Float64Array(m);
  const h = new Float64Array(m);
  const wx = new Float64Array(m);
  let violation = Math.abs(gb);
  for (let k = 0; k < m; k++) {
    const column = working[k] * n;
    let gk = 0;
    let hk = 0;
    let wxk = 0;
    for (let i = 0; i < n; i++) {
      const x = X[column + i];
      gk += x * residual[i];
      wxk += weight[i] * x;
      hk += weight[i] * x * x;
    }
    g[k] = gk;
    wx[k] = wxk;
    h[k] = hk + 1e-12;
    violation = Math.max(violation, kktViolation(gk, beta[working[k]], lambda));
  }
  return { residual, weight, sumWeight, gb, g, h, wx, violation };
}

/**
 * The Newton direction (d on the working set, db on the intercept): cyclic coordinate descent on
 * the quadratic model + λ‖β + d‖₁, each coordinate a soft-threshold. Full sweeps alternate with
 * sweeps over the coordinates that are nonzero (glmnet's active set). Returns Xd = X_W·d too.
 *
 * The model's gradient at coordinate k is g_k + db·Σ_i w_i x_ik + (H d)_k, H_kl = Σ_i w_i x_ik x_il,
 * kept current one of two ways (glmnet's two modes): on a small working set, covariance updates (H d
 * itself is kept; column l of H is computed, O(mn), the first time coordinate l moves, and a step
 * then costs O(m)); on a large one, naive updates (Xd is kept and (H d)_k = Σ_i w_i x_ik (Xd)_i costs
 * O(n) per visit), which is cheaper when few of many coordinates move.
 */
function newtonDirection(point: Point, model: Model) {
  const { design, beta, lambda, working, tol } = point;
  const { n, X } = design;
  const { weight, sumWeight, gb, g, h, wx, violation } = model;
  const m = working.length;
  const covariance = m <= COVARIANCE_MAX_FEATURES;
  const d = new Float64Array(m);
  const Xd = new Float64Array(n);
  const Hd = new Float64Array(m);
  const columns: (Float64Array | undefined)[] = new Array(m);
  const hessianColumn = (l: number) => {
    let column = columns[l];
    if (column) return column;
    column = new Float64Array(m);
    const weighted = new Float64Array(n);
    const xl = working[l] * n;
    for (let i = 0; i < n; i++) weighted[i] = weight[i] * X[xl + i];
    for (let k = 0; k < m; k++) {
      const xk = working[k] * n;
      let sum = 0;
      for (let i = 0; i < n; i++) sum += weighted[i] * X[xk + i];
      column[k] = sum;
    }
    return (columns[l] = column);
  };
  let db = 0;
  const innerTol = Math.max(1e-3 * violation, 0.1 * tol) ** 2;
  // S = Σ_k wx_k d_k = Σ_i w_i (X_W·d)_i is kept current, so the intercept's step costs O(1).
  let S = 0;
  const sweep = (indices: ArrayLike<number>) => {
    const shift = -(gb + S + db * sumWeight) / sumWeight;
    db += shift;
    let change = sumWeight * shift * shift;
    for (let r = 0; r < indices.length; r++) {
      const k = indices[r];
      const xk = working[k] * n;
      let gk = g[k] + db * wx[k];
      if (covariance) gk += Hd[k];
      else for (let i = 0; i < n; i++) gk += weight[i] * X[xk + i] * Xd[i];
      const z = beta[working[k]] + d[k];
      const target = softThreshold(z - gk / h[k], lambda / h[k]);
      const delta = target - z;
      if (delta === 0) continue;
      d[k] += delta;
      if (covariance) {
        const column = hessianColumn(k);
        for (let l = 0; l < m; l++) Hd[l] += delta * column[l];
      } else for (let i = 0; i < n; i++) Xd[i] += delta * X[xk + i];
      S += delta * wx[k];
      change = Math.max(change, h[k] * delta * delta);
    }
    return change;
  };
  const all = Array.from({ length: m }, (_, k) => k);
  for (let round = 0; round < 100; round++) {
    if (sweep(all) <= innerTol) break;
    const active = all.filter((k) => beta[working[k]] + d[k] !== 0);
    for (let inner = 0; inner < 200; inner++) if (sweep(active) <= innerTol) break;
  }
  if (covariance)
    for (let k = 0; k < m; k++) {
      if (d[k] === 0) continue;
      const column = working[k] * n;
      for (let i = 0; i < n; i++) Xd[i] += d[k] * X[column + i];
    }
  return { d, db, Xd };
}

/** Armijo backtracking on F along (d, db); moves the point and returns true, or false if no step descends. */
function lineSearch(point: Point, model: Model, d: Float64Array, db: number, Xd: Float64Array): boolean {
  const { design, y, beta, lambda, working, eta } = point;
  const { n } = design;
  const m = working.length;
  let l1Now = 0;
  let l1New = 0;
  let slope = model.gb * db;
  for (let k = 0; k < m; k++) {
    const j = working[k];
    l1Now += Math.abs(beta[j]);
    l1New += Math.abs(beta[j] + d[k]);
    slope += model.g[k] * d[k];
  }
  slope += lambda * (l1New - l1Now);
  const etaTrial = new Float64Array(n);
  let t = 1;
  for (let tries = 0; tries < 40; tries++) {
    for (let i = 0; i < n; i++) etaTrial[i] = eta[i] + t * (Xd[i] + db);
    let loss = 0;
    for (let i = 0; i < n; i++) loss += logLoss(etaTrial[i], y[i]);
    let l1 = 0; // coordinates outside the working set are zero
    for (let k = 0; k < m; k++) l1 += Math.abs(beta[working[k]] + t * d[k]);
    const trial = loss / n + lambda * l1;
    if (trial <= point.F + 0.01 * t * slope || (slope >= 0 && trial <= point.F)) {
      for (let k = 0; k < m; k++) beta[working[k]] += t * d[k];
      point.b0 += t * db;
      eta.set(etaTrial);
      point.F = trial;
      return true;
    }
    t *= 0.5;
  }
  return false;
}

/**
 * One pass over all p features: the exact gradient of every feature the bounds cannot clear, the
 * largest KKT violation, and the violators added to the working set.
 */
function kktPass(point: Point, bounds: GradientBounds) {
  const { design, y, eta, beta, lambda, tol, inWorking } = point;
  const { n, p, X } = design;
  const { residual, interceptGradient } = residuals(y, eta);
  bounds.move(residual, 0.05 * lambda);
  let violation = Math.abs(interceptGradient);
  let added = 0;
  for (let j = 0; j < p; j++) {
    if (!inWorking[j] && bounds.bound(j) <= lambda) continue; // |g_j| ≤ λ with β_j = 0: KKT holds
    const column = j * n;
    let g = 0;
    for (let i = 0; i < n; i++) g += X[column + i] * residual[i];
    bounds.exact(j, g);
    const v = kktViolation(g, beta[j], lambda);
    violation = Math.max(violation, v);
    if (!inWorking[j] && v > tol) {
      inWorking[j] = 1;
      added++;
    }
  }
  return { violation, added };
}

function collect(flags: Uint8Array): number[] {
  const out: number[] = [];
  for (let j = 0; j < flags.length; j++) if (flags[j]) out.push(j);
  return out;
}
