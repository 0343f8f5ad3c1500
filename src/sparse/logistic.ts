/**
 * L1-regularised (lasso) logistic regression, the sparse code of the article's emotion analysis.
 *
 * For samples x_i ∈ R^p (standardised: each feature centred and scaled to unit population variance)
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
 * adds the violators and continues. `tol` bounds the largest violation at the returned solution.
 */

export interface Design {
  /** Samples. */
  n: number;
  /** Features. */
  p: number;
  /** Standardised features, column-major: X[j·n + i] is feature j of sample i. */
  X: Float64Array;
  /** Per-feature mean and scale (see FeatureScaling; 1 for a constant or excluded feature). */
  mean: Float64Array;
  scale: Float64Array;
}

/**
 * How features are scaled before the L1 penalty:
 *   - "per-neuron" (glmnet's default): every feature is centred and divided by its own standard
 *     deviation, so the penalty treats all neurons alike whatever their spread;
 *   - "shared": every feature is centred and all are divided by one scale, the root mean square of
 *     the centred values over all features. Attribution vectors are in one unit (W·t/|t|), and this
 *     keeps their relative sizes: a neuron that barely moves between prompts stays small instead of
 *     being lifted to unit variance, where with few prompts per class it can look as telling as a
 *     neuron that carries the concept.
 */
export type FeatureScaling = 'per-neuron' | 'shared';

/**
 * The standardised design of samples (rows). Features listed in `exclude`, and constant features,
 * become zero columns: they can never enter a model.
 */
export function standardize(
  rows: readonly ArrayLike<number>[],
  exclude: ReadonlySet<number> = new Set(),
  scaling: FeatureScaling = 'per-neuron',
): Design {
  const n = rows.length;
  const p = n > 0 ? rows[0].length : 0;
  const X = new Float64Array(n * p);
  const mean = new Float64Array(p);
  const spread = new Float64Array(p); // population standard deviation; 0 for a constant feature
  for (let j = 0; j < p; j++) {
    if (exclude.has(j)) continue;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += rows[i][j];
    const mu = sum / n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (rows[i][j] - mu) ** 2;
    const sd = Math.sqrt(ss / n);
    mean[j] = mu;
    if (sd > 1e-12 * (Math.abs(mu) + 1e-30)) spread[j] = sd;
  }
  const scale = new Float64Array(p).fill(1);
  let shared = 0;
  if (scaling === 'shared') {
    let squares = 0;
    let counted = 0;
    for (let j = 0; j < p; j++) {
      if (exclude.has(j)) continue;
      squares += spread[j] * spread[j];
      counted++;
    }
    shared = counted > 0 ? Math.sqrt(squares / counted) : 0;
  }
  for (let j = 0; j < p; j++) {
    if (spread[j] === 0) continue;
    scale[j] = scaling === 'shared' ? shared : spread[j];
    const column = j * n;
    for (let i = 0; i < n; i++) X[column + i] = (rows[i][j] - mean[j]) / scale[j];
  }
  return { n, p, X, mean, scale };
}

export interface SolverOptions {
  /** Largest KKT violation accepted at the solution. */
  tol?: number;
  /** Cap on proximal Newton steps (over all working-set rounds). */
  maxIter?: number;
}

export interface BinaryFit {
  lambda: number;
  /** Coefficients on the standardised features (the ones λ‖β‖₁ penalises). */
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

/**
 * Safe screening of the KKT pass. The gradient is g = Xᵀ r with r = (σ(η) − y)/n, and standardised
 * columns have ‖x_j‖ ≤ √n. When r moves by Δ, the few samples with the largest |Δ_i| update an
 * estimate g̃ exactly (g̃ += Δ_i x_i), and the rest Δ' only widens an error bound: |Σ Δ'_i x_ij| ≤ √n ‖Δ'‖.
 * Each feature keeps g̃_j and the cumulative error D at its last exact evaluation, so
 * |g_j| ≤ |g̃_j| + D_now − D_then. A zero coefficient whose bound is ≤ λ satisfies its KKT condition
 * without computing g_j, so most of the O(np) pass is skipped along a path.
 */
export class GradientBounds {
  private readonly estimateOf: Float64Array;
  private readonly errorAt: Float64Array;
  private error = 0;
  private readonly residual: Float64Array;
  private readonly rootN: number;

  constructor(
    private readonly design: Design,
    residual: Float64Array,
    gradient: Float64Array,
  ) {
    this.rootN = Math.sqrt(design.n);
    this.residual = Float64Array.from(residual);
    this.estimateOf = Float64Array.from(gradient);
    this.errorAt = new Float64Array(gradient.length);
  }

  /** The residual moved to `residual`: up to 16 of the largest |Δ_i| go into g̃ exactly, until √n‖Δ′‖ ≤ `budget`. */
  move(residual: Float64Array, budget: number) {
    const { n, p, X } = this.design;
    const delta = residual.map((r, i) => r - this.residual[i]);
    let rest = delta.reduce((sum, d) => sum + d * d, 0);
    const order = Array.from(delta.keys()).sort((a, b) => Math.abs(delta[b]) - Math.abs(delta[a]));
    for (let k = 0; k < 16 && this.rootN * Math.sqrt(Math.max(rest, 0)) > budget; k++) {
      const i = order[k];
      const d = delta[i];
      for (let j = 0; j < p; j++) this.estimateOf[j] += d * X[j * n + i];
      rest -= d * d;
    }
    this.error += this.rootN * Math.sqrt(Math.max(rest, 0));
    this.residual.set(residual);
  }

  /** |g̃_j|: the estimate without its error bound (what a heuristic such as the strong rule needs). */
  estimate(j: number): number {
    return Math.abs(this.estimateOf[j]);
  }

  bound(j: number): number {
    return Math.abs(this.estimateOf[j]) + this.error - this.errorAt[j];
  }

  exact(j: number, g: number) {
    this.estimateOf[j] = g;
    this.errorAt[j] = this.error;
  }
}

const DEFAULT_TOL = 1e-7;
const DEFAULT_MAX_ITER = 500;
const MIN_WEIGHT = 1e-10;

function logLoss(eta: number, y: number): number {
  return (eta > 0 ? eta + Math.log1p(Math.exp(-eta)) : Math.log1p(Math.exp(eta))) - y * eta;
}

export const sigmoid = (eta: number) =>
  eta >= 0 ? 1 / (1 + Math.exp(-eta)) : Math.exp(eta) / (1 + Math.exp(eta));

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

export function linearPredictor(design: Design, coef: Float64Array, intercept: number): Float64Array {
  const { n, p, X } = design;
  const eta = new Float64Array(n).fill(intercept);
  for (let j = 0; j < p; j++) {
    const c = coef[j];
    if (c === 0) continue;
    const column = j * n;
    for (let i = 0; i < n; i++) eta[i] += c * X[column + i];
  }
  return eta;
}

/** g_j = (1/n) Σ_i x_ij (σ(η_i) − y_i) for every feature, and the intercept's component. */
export function lossGradient(design: Design, y: ArrayLike<number>, eta: Float64Array) {
  const { n, p, X } = design;
  const residual = new Float64Array(n);
  let interceptGradient = 0;
  for (let i = 0; i < n; i++) {
    residual[i] = (sigmoid(eta[i]) - y[i]) / n;
    interceptGradient += residual[i];
  }
  const gradient = new Float64Array(p);
  for (let j = 0; j < p; j++) {
    const column = j * n;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += X[column + i] * residual[i];
    gradient[j] = sum;
  }
  return { gradient, interceptGradient, residual };
}

/** The KKT violation of coordinate j: |g_j + λ sign β_j| if β_j ≠ 0, else max(|g_j| − λ, 0). */
export function kktViolation(g: number, beta: number, lambda: number): number {
  return beta !== 0 ? Math.abs(g + lambda * Math.sign(beta)) : Math.max(Math.abs(g) - lambda, 0);
}

/** λ_max: the smallest λ at which β = 0 is optimal, max_j |(1/n) Σ_i x_ij (y_i − ȳ)|. */
export function lambdaMax(design: Design, y: ArrayLike<number>): number {
  const ybar = meanOf(y);
  const eta = new Float64Array(design.n).fill(logit(ybar));
  const { gradient } = lossGradient(design, y, eta);
  return gradient.reduce((max, g) => Math.max(max, Math.abs(g)), 0);
}

export const logit = (q: number) => Math.log(q / (1 - q));

function meanOf(y: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < y.length; i++) sum += y[i];
  return sum / y.length;
}

/** Checks labels are 0/1 with both classes present. */
function checkLabels(y: ArrayLike<number>, n: number) {
  if (y.length !== n) throw new RangeError(`expected ${n} labels, got ${y.length}`);
  let positives = 0;
  for (let i = 0; i < n; i++) {
    if (y[i] !== 0 && y[i] !== 1) throw new RangeError('labels must be 0 or 1');
    positives += y[i];
  }
  if (positives === 0 || positives === n) throw new RangeError('both classes must be present');
}

/** Solves the L1 logistic problem at one λ on a standardised design (see the module docstring). */
export function fitBinary(
  design: Design,
  y: ArrayLike<number>,
  lambda: number,
  options: SolverOptions = {},
  warm?: WarmStart,
): BinaryFit {
  const { n, p, X } = design;
  checkLabels(y, n);
  if (!(lambda >= 0)) throw new RangeError('lambda must be ≥ 0');
  const tol = options.tol ?? DEFAULT_TOL;
  const maxIter = options.maxIter ?? DEFAULT_MAX_ITER;
  const beta = warm ? Float64Array.from(warm.coef) : new Float64Array(p);
  let b0 = warm ? warm.intercept : logit(meanOf(y));
  let eta = linearPredictor(design, beta, b0);
  let F = objective(eta, y, beta, lambda);

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
  let working = collect(inWorking);

  const prob = new Float64Array(n);
  const weight = new Float64Array(n);
  const residual = new Float64Array(n);
  const Xd = new Float64Array(n);
  const etaTrial = new Float64Array(n);
  let iterations = 0;

  for (;;) {
    // Proximal Newton on the working set until its KKT conditions hold.
    while (iterations < maxIter) {
      let sumWeight = 0;
      let gb = 0;
      for (let i = 0; i < n; i++) {
        prob[i] = sigmoid(eta[i]);
        residual[i] = (prob[i] - y[i]) / n;
        weight[i] = Math.max(prob[i] * (1 - prob[i]), MIN_WEIGHT) / n;
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
      if (violation <= tol) break;
      iterations++;

      // Newton direction: coordinate descent on the quadratic model + λ‖β + d‖₁.
      const d = new Float64Array(m);
      let db = 0;
      Xd.fill(0);
      const innerTol = Math.max(1e-3 * violation, 0.1 * tol) ** 2;
      // Xd holds X_W·d (features only); the intercept's part db is added where needed, and
      // S = Σ_i w_i (X_W·d)_i is kept current, so the intercept's coordinate step costs O(1).
      let S = 0;
      const sweep = (indices: ArrayLike<number>) => {
        const shift = -(gb + S + db * sumWeight) / sumWeight;
        db += shift;
        let change = sumWeight * shift * shift;
        for (let r = 0; r < indices.length; r++) {
          const k = indices[r];
          const column = working[k] * n;
          let gk = g[k] + db * wx[k];
          for (let i = 0; i < n; i++) gk += weight[i] * X[column + i] * Xd[i];
          const z = beta[working[k]] + d[k];
          const target = softThreshold(z - gk / h[k], lambda / h[k]);
          const delta = target - z;
          if (delta === 0) continue;
          d[k] += delta;
          for (let i = 0; i < n; i++) Xd[i] += delta * X[column + i];
          S += delta * wx[k];
          change = Math.max(change, h[k] * delta * delta);
        }
        return change;
      };
      // Full sweeps alternate with sweeps over the coordinates that are nonzero (glmnet's active set).
      const all = Array.from({ length: m }, (_, k) => k);
      for (let round = 0; round < 100; round++) {
        if (sweep(all) <= innerTol) break;
        const active = all.filter((k) => beta[working[k]] + d[k] !== 0);
        for (let inner = 0; inner < 200; inner++) if (sweep(active) <= innerTol) break;
      }

      // Armijo backtracking on F along (d, db).
      let l1Now = 0;
      let l1New = 0;
      let slope = gb * db;
      for (let k = 0; k < m; k++) {
        const j = working[k];
        l1Now += Math.abs(beta[j]);
        l1New += Math.abs(beta[j] + d[k]);
        slope += g[k] * d[k];
      }
      slope += lambda * (l1New - l1Now);
      let t = 1;
      let accepted = false;
      for (let tries = 0; tries < 40; tries++) {
        for (let i = 0; i < n; i++) etaTrial[i] = eta[i] + t * (Xd[i] + db);
        let loss = 0;
        for (let i = 0; i < n; i++) loss += logLoss(etaTrial[i], y[i]);
        let l1 = 0; // coordinates outside the working set are zero
        for (let k = 0; k < m; k++) l1 += Math.abs(beta[working[k]] + t * d[k]);
        const trial = loss / n + lambda * l1;
        if (trial <= F + 0.01 * t * slope || (slope >= 0 && trial <= F)) {
          for (let k = 0; k < m; k++) beta[working[k]] += t * d[k];
          b0 += t * db;
          eta.set(etaTrial);
          F = trial;
          accepted = true;
          break;
        }
        t *= 0.5;
      }
      if (!accepted) break; // no further descent is possible at this precision
    }

    // One pass over all features (screened by the bounds): add the KKT violators, or stop.
    let interceptGradient = 0;
    for (let i = 0; i < n; i++) {
      residual[i] = (sigmoid(eta[i]) - y[i]) / n;
      interceptGradient += residual[i];
    }
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
    if (added === 0 || iterations >= maxIter) {
      eta = linearPredictor(design, beta, b0); // drop accumulated rounding in η
      return {
        lambda,
        coef: beta,
        intercept: b0,
        objective: objective(eta, y, beta, lambda),
        iterations,
        converged: violation <= tol,
        kktViolation: violation,
        bounds,
      };
    }
    working = collect(inWorking);
  }
}

function softThreshold(z: number, threshold: number): number {
  return z > threshold ? z - threshold : z < -threshold ? z + threshold : 0;
}

function collect(flags: Uint8Array): number[] {
  const out: number[] = [];
  for (let j = 0; j < flags.length; j++) if (flags[j]) out.push(j);
  return out;
}
