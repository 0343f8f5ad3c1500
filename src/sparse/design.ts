/**
 * What every sparse estimator here shares: the scaled design matrix, the linear predictor, the
 * binary log loss, label checks, the KKT violation of one coordinate, tolerances, and the work
 * budget that bounds a whole selection.
 *
 * A design holds n samples of p features, each feature centred and divided by a scale (see
 * FeatureScaling), column-major. The penalty λ‖β‖₁ acts on coefficients of the scaled features, so
 * the scaling decides which neurons a sparse fit finds cheap to use.
 */

/** Largest KKT violation accepted at a solution, unless a request asks for another. */
export const DEFAULT_TOL = 1e-7;
/** Floor of a Hessian weight p(1 − p)/n, so a separated sample keeps a little curvature. */
export const MIN_WEIGHT = 1e-10;

export interface SolverOptions {
  /** Largest KKT violation accepted at the solution. */
  tol?: number;
  /** Cap on proximal Newton steps (binary) or sweeps over the classes (multinomial) of one fit. */
  maxIter?: number;
  /** The passes the whole selection may spend, shared by its fits (none: only maxIter). */
  budget?: WorkBudget;
}

export interface Design {
  /** Samples. */
  n: number;
  /** Features. */
  p: number;
  /** Scaled features, column-major: X[j·n + i] is feature j of sample i. */
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
 *     neuron that carries the concept. Columns are then as long as their spread makes them: a wide
 *     neuron's column can be several times √n (see GradientBounds).
 */
export type FeatureScaling = 'per-neuron' | 'shared';

/**
 * The scaled design of samples (rows). Features listed in `exclude`, and constant features, become
 * zero columns: they can never enter a model.
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

/** ‖x_j‖ of every column. */
export function columnNorms(design: Design): Float64Array {
  const { n, p, X } = design;
  const norms = new Float64Array(p);
  for (let j = 0; j < p; j++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += X[j * n + i] ** 2;
    norms[j] = Math.sqrt(sum);
  }
  return norms;
}

/** η_i = β₀ + x_i·β for every sample of the design. */
export function linearPredictor(design: Design, coef: ArrayLike<number>, intercept: number): Float64Array {
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

/** η of a raw (unscaled) row under coefficients fitted on `design`. */
export function decision(
  design: Design,
  fit: { coef: ArrayLike<number>; intercept: number },
  row: ArrayLike<number>,
): number {
  let eta = fit.intercept;
  for (let j = 0; j < design.p; j++) {
    const c = fit.coef[j];
    if (c !== 0) eta += (c * (row[j] - design.mean[j])) / design.scale[j];
  }
  return eta;
}

/** The binary log loss log(1 + e^η) − yη, without overflow. */
export function logLoss(eta: number, y: number): number {
  return (eta > 0 ? eta + Math.log1p(Math.exp(-eta)) : Math.log1p(Math.exp(eta))) - y * eta;
}

export const sigmoid = (eta: number) =>
  eta >= 0 ? 1 / (1 + Math.exp(-eta)) : Math.exp(eta) / (1 + Math.exp(eta));

export const logit = (q: number) => Math.log(q / (1 - q));

export function meanOf(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  return sum / values.length;
}

/** Checks binary labels: 0/1, one per sample, both classes present. */
export function checkBinaryLabels(y: ArrayLike<number>, n: number) {
  if (y.length !== n) throw new RangeError(`expected ${n} labels, got ${y.length}`);
  let positives = 0;
  for (let i = 0; i < n; i++) {
    if (y[i] !== 0 && y[i] !== 1) throw new RangeError('labels must be 0 or 1');
    positives += y[i];
  }
  if (positives === 0 || positives === n) throw new RangeError('both classes must be present');
}

/** Checks class labels: integers 0 … K−1, one per sample, every class present. */
export function checkClassLabels(labels: readonly number[], n: number, K: number) {
  if (labels.length !== n) throw new RangeError(`expected ${n} labels, got ${labels.length}`);
  const seen = new Uint8Array(K);
  for (const c of labels) {
    if (!Number.isInteger(c) || c < 0 || c >= K) throw new RangeError(`labels must be 0 … ${K - 1}`);
    seen[c] = 1;
  }
  if (seen.includes(0)) throw new RangeError('every class must have samples');
}

/** The KKT violation of coordinate j: |g_j + λ sign β_j| if β_j ≠ 0, else max(|g_j| − λ, 0). */
export function kktViolation(g: number, beta: number, lambda: number): number {
  return beta !== 0 ? Math.abs(g + lambda * Math.sign(beta)) : Math.max(Math.abs(g) - lambda, 0);
}

/** The proximal step of λ|·|: S(z, t) = sign(z) max(|z| − t, 0). */
export function softThreshold(z: number, threshold: number): number {
  return z > threshold ? z - threshold : z < -threshold ? z + threshold : 0;
}

export const supportSize = (coef: ArrayLike<number>) => {
  let count = 0;
  for (let j = 0; j < coef.length; j++) if (coef[j] !== 0) count++;
  return count;
};

/**
 * The work a whole selection (a path, a support search, a cross-validation) may spend, counted in
 * solver passes (a proximal Newton step of a binary fit, a sweep over the classes of a multinomial
 * fit), never in time: the same request stops at the same pass on a fast and a slow machine, so it
 * gives the same numbers. Fits draw from it and stop, `converged: false`, when it is spent.
 */
export class WorkBudget {
  used = 0;

  constructor(readonly limit = Infinity) {}

  /** Passes still allowed. */
  get left(): number {
    return Math.max(this.limit - this.used, 0);
  }

  /** True while a pass may still be spent. */
  allows(): boolean {
    return this.used < this.limit;
  }

  /** Every pass is spent: the fits after this point stop where they are. */
  get exhausted(): boolean {
    return this.used >= this.limit;
  }

  spend(passes = 1) {
    this.used += passes;
  }

  /** A budget of `passes` (at most what is left) whose spending counts here too. */
  share(passes: number): WorkBudget {
    return new SubBudget(Math.min(Math.floor(passes), this.left), this);
  }

  /** A budget that never refuses but counts here (for the steps a search must finish). */
  overdraft(): WorkBudget {
    return new SubBudget(Infinity, this);
  }

  /** What a response reports: passes used, the limit (null when none), and whether all were spent. */
  report(): WorkReport {
    return {
      passes: this.used,
      limit: Number.isFinite(this.limit) ? this.limit : null,
      exhausted: this.exhausted,
    };
  }
}

class SubBudget extends WorkBudget {
  constructor(
    limit: number,
    private readonly parent: WorkBudget,
  ) {
    super(limit);
  }

  override spend(passes = 1) {
    super.spend(passes);
    this.parent.spend(passes);
  }
}

export interface WorkReport {
  /** Solver passes spent (see WorkBudget). */
  passes: number;
  limit: number | null;
  /** True when every pass was spent: fits that had not converged by then report converged: false. */
  exhausted: boolean;
}
