/**
 * The regularisation path of L1 logistic regression and the choice of λ, one-vs-rest over classes.
 *
 * Path: λ_t = λ_max · r^{t/(T−1)}, t = 0 … T−1, log-spaced from λ_max (the smallest λ with β = 0,
 * see sparse-logistic.ts) down to r·λ_max (glmnet's lambda.min.ratio: 0.01 when n < p, else 1e-4).
 * Each λ_t is warm-started from λ_{t−1}, and the sequential strong rule (Tibshirani et al. 2012)
 * starts its working set with the features where |g_j(λ_{t−1})| ≥ 2λ_t − λ_{t−1}; the solver's KKT
 * pass over all features adds any the rule missed, so the path is exact.
 *
 * One-vs-rest: class k's model separates its samples (y = 1) from all others (y = 0); a sample is
 * predicted as argmax_k η_k. Three ways to choose λ:
 *   - a fixed λ, shared by all classes;
 *   - a target support size s: per class, the path walks down from its own λ_max until more than s
 *     features enter, then bisects log λ for a model with exactly s (or the largest ≤ s);
 *   - K-fold cross-validation on one λ grid shared by the classes, as cv.glmnet: folds stratified by
 *     class, each fold's training part standardised on its own; the held-out loss of a sample is
 *     Σ_k [log(1 + e^{η_k}) − y_k η_k]; CV(λ) is its mean over folds and SE(λ) the standard error of the
 *     fold means; the one-standard-error rule takes the largest λ with CV(λ) ≤ CV(λ_min) + SE(λ_min).
 *     The path stops early once CV(λ) has stayed above that band for 5 steps past the minimum.
 */
import {
  fitBinary,
  lambdaMax,
  sigmoid,
  standardize,
  type BinaryFit,
  type Design,
  type FeatureScaling,
  type SolverOptions,
} from './logistic.js';
import { CvCurve, stratifiedFolds } from './cross-validation.js';

/** The log-spaced grid λ_max · r^{t/(T−1)}, t = 0 … T−1. */
export function lambdaGrid(lambdaMaxValue: number, count: number, minRatio: number): number[] {
  if (count < 2) return [lambdaMaxValue];
  return Array.from({ length: count }, (_, t) => lambdaMaxValue * minRatio ** (t / (count - 1)));
}

export const defaultMinRatio = (design: Design) => (design.n < design.p ? 0.01 : 1e-4);

/** Solutions at every λ of a decreasing grid, warm-started, with the sequential strong rule. */
export function fitPath(
  design: Design,
  y: ArrayLike<number>,
  lambdas: readonly number[],
  options: SolverOptions = {},
): BinaryFit[] {
  const fits: BinaryFit[] = [];
  let previous: BinaryFit | undefined;
  let previousLambda = lambdas.length ? Math.max(lambdas[0], lambdaMax(design, y)) : 0;
  for (const lambda of lambdas) {
    fits.push((previous = step(design, y, lambda, previousLambda, options, previous)));
    previousLambda = lambda;
  }
  return fits;
}

/** One warm-started step of a path from λ_prev to λ. */
function step(
  design: Design,
  y: ArrayLike<number>,
  lambda: number,
  previousLambda: number,
  options: SolverOptions,
  previous?: BinaryFit,
): BinaryFit {
  if (!previous) return fitBinary(design, y, lambda, options);
  const strong: number[] = [];
  const threshold = 2 * lambda - previousLambda;
  for (let j = 0; j < design.p; j++) if (previous.bounds.estimate(j) >= threshold) strong.push(j);
  return fitBinary(design, y, lambda, options, {
    coef: previous.coef,
    intercept: previous.intercept,
    workingSet: strong,
    bounds: previous.bounds,
  });
}

export const supportSize = (coef: Float64Array) => coef.reduce((count, c) => count + (c !== 0 ? 1 : 0), 0);

/** The solution at λ, reached by a short warm-started path from λ_max (glmnet's advice for one λ). */
export function fitAtLambda(
  design: Design,
  y: ArrayLike<number>,
  lambda: number,
  options: SolverOptions = {},
) {
  const top = lambdaMax(design, y);
  if (lambda >= top) return fitBinary(design, y, lambda, options);
  const steps = Math.max(2, Math.min(20, Math.ceil(4 * Math.log10(top / Math.max(lambda, 1e-12 * top))) + 1));
  return fitPath(design, y, lambdaGrid(top, steps, lambda / top), options).at(-1)!;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Longest stretch of solver work between two hand-backs of the event loop. */
const YIELD_EVERY_MS = 10;

type SupportOptions = SolverOptions & { nLambda?: number; lambdaMinRatio?: number; deadline?: number };

/** The model with `target` nonzero coefficients (or the largest support ≤ target the path reaches). */
export function fitToSupportSize(
  design: Design,
  y: ArrayLike<number>,
  target: number,
  options: SupportOptions = {},
): BinaryFit {
  const search = supportSearch(design, y, target, options);
  for (;;) {
    const next = search.next();
    if (next.done) return next.value;
  }
}

/**
 * The same search, handing the event loop back every ~10 ms: one class of a large problem can take
 * seconds, and a service must answer other requests meanwhile.
 */
export async function fitToSupportSizeAsync(
  design: Design,
  y: ArrayLike<number>,
  target: number,
  options: SupportOptions = {},
): Promise<BinaryFit> {
  const search = supportSearch(design, y, target, options);
  let since = performance.now();
  for (;;) {
    const next = search.next();
    if (next.done) return next.value;
    if (performance.now() - since >= YIELD_EVERY_MS) {
      await yieldToEventLoop();
      since = performance.now();
    }
  }
}

/** The support search as steps: it yields after every fit, and returns the chosen one. */
function* supportSearch(
  design: Design,
  y: ArrayLike<number>,
  target: number,
  options: SupportOptions,
): Generator<void, BinaryFit> {
  const late = () => performance.now() > (options.deadline ?? Infinity);
  const grid = lambdaGrid(
    lambdaMax(design, y),
    options.nLambda ?? 50,
    options.lambdaMinRatio ?? Math.min(defaultMinRatio(design), 1e-3),
  );
  let best: BinaryFit | undefined;
  let previousLambda = grid[0];
  let over: BinaryFit | undefined;
  for (const lambda of grid) {
    const fit = step(design, y, lambda, previousLambda, options, best);
    yield;
    previousLambda = lambda;
    if (supportSize(fit.coef) > target) {
      over = fit;
      break;
    }
    best = fit;
    // Out of time, a class still gets its first neuron(s): the search goes on until one enters.
    if (supportSize(fit.coef) === target || (late() && supportSize(fit.coef) > 0)) return fit;
  }
  if (!best) return fitBinary(design, y, grid[0], options);
  if (!over) return best;
  // Bisect log λ between the last fit with ≤ target features and the first with more.
  let hi = best.lambda;
  let lo = over.lambda;
  for (let i = 0; i < 20 && !late(); i++) {
    const mid = Math.sqrt(hi * lo);
    const fit = fitBinary(design, y, mid, options, {
      coef: best.coef,
      intercept: best.intercept,
      bounds: best.bounds,
    });
    yield;
    const size = supportSize(fit.coef);
    if (size > target) lo = mid;
    else {
      hi = mid;
      best = fit;
      if (size === target) break;
    }
  }
  return best;
}

export type Selection =
  { kind: 'lambda'; lambda: number } | { kind: 'support'; size: number } | { kind: 'cv'; folds: number };

export interface OneVsRestOptions extends SolverOptions {
  /**
   * Time budget of the whole selection. Past it, support searches keep the largest support they
   * reached and a cross-validation keeps the λ it has scored (performance.now() deadline inside).
   */
  timeLimitMs?: number;
  deadline?: number;
  /** Features that never enter (zero columns). */
  exclude?: ReadonlySet<number>;
  /** Default "per-neuron". */
  scaling?: FeatureScaling;
  nLambda?: number;
  lambdaMinRatio?: number;
  /** Seed of the fold assignment. */
  seed?: number;
}

export interface CrossValidation {
  folds: number;
  lambdas: number[];
  /** Mean held-out loss per λ and its standard error. */
  cvm: number[];
  cvsd: number[];
  lambdaMin: number;
  lambda1se: number;
  /** Held-out accuracy (argmax over classes) at λ_1se. */
  accuracy: number;
}

export interface OneVsRestFit {
  design: Design;
  /** One fit per class (coefficients on the standardised features). */
  fits: BinaryFit[];
  /** The λ shared by all classes, or null when each class has its own (support-size selection). */
  lambda: number | null;
  /** Training accuracy of argmax_k η_k. */
  accuracy: number;
  cv?: CrossValidation;
}

/** One-vs-rest fits of `labels` (class index per sample, 0 … K−1), λ chosen by `selection`. */
export async function fitOneVsRest(
  rows: readonly ArrayLike<number>[],
  labels: readonly number[],
  classCount: number,
  selection: Selection,
  options: OneVsRestOptions = {},
): Promise<OneVsRestFit> {
  const started = performance.now();
  const limit = options.timeLimitMs ?? Infinity;
  const deadline = started + limit;
  const design = standardize(rows, options.exclude, options.scaling);
  const targets = Array.from({ length: classCount }, (_, k) =>
    Float64Array.from(labels, (c) => (c === k ? 1 : 0)),
  );
  let lambda: number | null = null;
  let cv: CrossValidation | undefined;
  if (selection.kind === 'lambda') lambda = selection.lambda;
  if (selection.kind === 'cv') {
    // Two thirds of the budget for the folds, the rest for the final fits.
    cv = await crossValidate(rows, labels, classCount, selection.folds, {
      ...options,
      deadline: started + (2 / 3) * limit,
    });
    lambda = cv.lambda1se;
  }
  const fits: BinaryFit[] = [];
  // Each class's support search gets an equal share of what is left of the budget.
  const searchStart = performance.now();
  const share = (deadline - searchStart) / classCount;
  for (const [k, y] of targets.entries()) {
    fits.push(
      lambda === null
        ? await fitToSupportSizeAsync(design, y, (selection as { size: number }).size, {
            ...options,
            deadline: searchStart + share * (k + 1),
          })
        : fitAtLambda(design, y, lambda, options),
    );
    await yieldToEventLoop();
  }
  const eta = fits.map((fit) => predictStandardized(design, fit));
  const correct = labels.filter((c, i) => argmaxAt(eta, i) === c).length;
  return { design, fits, lambda, accuracy: correct / labels.length, cv };
}

/** η of every row of a standardised design under a fit. */
function predictStandardized(design: Design, fit: BinaryFit): Float64Array {
  const { n, p, X } = design;
  const eta = new Float64Array(n).fill(fit.intercept);
  for (let j = 0; j < p; j++) {
    const c = fit.coef[j];
    if (c !== 0) for (let i = 0; i < n; i++) eta[i] += c * X[j * n + i];
  }
  return eta;
}

/** η of a raw (unstandardised) row under a fit made on `design`. */
export function decision(
  design: Design,
  fit: Pick<BinaryFit, 'coef' | 'intercept'>,
  row: ArrayLike<number>,
): number {
  let eta = fit.intercept;
  for (let j = 0; j < design.p; j++) {
    const c = fit.coef[j];
    if (c !== 0) eta += (c * (row[j] - design.mean[j])) / design.scale[j];
  }
  return eta;
}

function argmaxAt(scores: readonly Float64Array[], i: number): number {
  let best = 0;
  for (let k = 1; k < scores.length; k++) if (scores[k][i] > scores[best][i]) best = k;
  return best;
}

/** K-fold CV of the one-vs-rest path on a grid shared by all classes (see the module docstring). */
export async function crossValidate(
  rows: readonly ArrayLike<number>[],
  labels: readonly number[],
  classCount: number,
  folds: number,
  options: OneVsRestOptions = {},
): Promise<CrossValidation> {
  const full = standardize(rows, options.exclude, options.scaling);
  const top = Math.max(
    ...Array.from({ length: classCount }, (_, k) =>
      lambdaMax(
        full,
        labels.map((c) => (c === k ? 1 : 0)),
      ),
    ),
  );
  const lambdas = lambdaGrid(top, options.nLambda ?? 30, options.lambdaMinRatio ?? defaultMinRatio(full));
  const foldOf = stratifiedFolds(labels, folds, options.seed);
  const parts = Array.from({ length: folds }, (_, f) => {
    const train = labels.flatMap((_, i) => (foldOf[i] !== f ? [i] : []));
    const test = labels.flatMap((_, i) => (foldOf[i] === f ? [i] : []));
    const design = standardize(
      train.map((i) => rows[i]),
      options.exclude,
      options.scaling,
    );
    const targets = Array.from({ length: classCount }, (_, k) => {
      const y = train.map((i) => (labels[i] === k ? 1 : 0));
      if (!y.includes(1)) throw new RangeError(`class ${k} has all its samples in one fold`);
      return y;
    });
    const previous: (BinaryFit | undefined)[] = new Array(classCount).fill(undefined);
    return { test, design, targets, previous };
  }).filter((part) => part.test.length > 0);
  const curve = new CvCurve(parts.map((part) => part.test.length));
  const heldOutEta: Float64Array[][] = []; // [λ][class] η per sample
  // λ by λ over all folds and classes (each warm-started from its own previous λ), so the path can
  // stop once CV(λ) has stayed above CV(λ_min) + SE(λ_min) for PATIENCE steps: smaller λ cannot be
  // chosen by the one-standard-error rule unless the curve turns down again, and they cost the most.
  for (let t = 0; t < lambdas.length; t++) {
    const etas = Array.from({ length: classCount }, () => new Float64Array(rows.length));
    const losses: number[] = []; // mean held-out loss per fold
    for (const part of parts) {
      let loss = 0;
      for (let k = 0; k < classCount; k++) {
        const fit = step(
          part.design,
          part.targets[k],
          lambdas[t],
          lambdas[Math.max(t - 1, 0)],
          options,
          part.previous[k],
        );
        part.previous[k] = fit;
        for (const i of part.test) {
          const eta = decision(part.design, fit, rows[i]);
          etas[k][i] = eta;
          loss +=
            (eta > 0 ? eta + Math.log1p(Math.exp(-eta)) : Math.log1p(Math.exp(eta))) -
            (labels[i] === k ? eta : 0);
        }
      }
      losses.push(loss / part.test.length);
      await yieldToEventLoop();
    }
    heldOutEta.push(etas);
    if (curve.add(losses) || performance.now() > (options.deadline ?? Infinity)) break;
  }
  const { cvm, cvsd, tMin, t1se } = curve;
  lambdas.length = cvm.length;
  const correct = labels.filter((c, i) => argmaxAt(heldOutEta[t1se], i) === c).length;
  return {
    folds,
    lambdas,
    cvm,
    cvsd,
    lambdaMin: lambdas[tMin],
    lambda1se: lambdas[t1se],
    accuracy: correct / labels.length,
  };
}

/**
 * The binary estimator in scikit-learn's shape: `fit(X, y)` standardises X, solves at a fixed `lambda`
 * (reached by a warm-started path) or at the λ that gives `support` nonzero coefficients, and exposes
 * `coef_`/`intercept_` on the original feature scale, plus `lambda_`, `objective_`, `nIter_` and
 * `converged_`.
 */
export class SparseLogisticRegression {
  coef_: Float64Array = new Float64Array(0);
  intercept_ = 0;
  /** Coefficients on the standardised features, the ones the penalty acts on. */
  standardizedCoef_: Float64Array = new Float64Array(0);
  objective_ = NaN;
  nIter_ = 0;
  converged_ = false;
  kktViolation_ = NaN;

  lambda_ = NaN;

  constructor(readonly params: ({ lambda: number } | { support: number }) & SolverOptions) {}

  fit(X: readonly ArrayLike<number>[], y: ArrayLike<number>): this {
    const design = standardize(X);
    const fit =
      'lambda' in this.params
        ? fitAtLambda(design, y, this.params.lambda, this.params)
        : fitToSupportSize(design, y, this.params.support, this.params);
    this.lambda_ = fit.lambda;
    this.standardizedCoef_ = fit.coef;
    this.coef_ = fit.coef.map((c, j) => c / design.scale[j]);
    this.intercept_ = fit.intercept - this.coef_.reduce((sum, c, j) => sum + c * design.mean[j], 0);
    this.objective_ = fit.objective;
    this.nIter_ = fit.iterations;
    this.converged_ = fit.converged;
    this.kktViolation_ = fit.kktViolation;
    return this;
  }

  decisionFunction(X: readonly ArrayLike<number>[]): Float64Array {
    return Float64Array.from(X, (x) => {
      let eta = this.intercept_;
      for (let j = 0; j < this.coef_.length; j++) eta += this.coef_[j] * x[j];
      return eta;
    });
  }

  predictProba(X: readonly ArrayLike<number>[]): Float64Array {
    return this.decisionFunction(X).map(sigmoid);
  }
}
