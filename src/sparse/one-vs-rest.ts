/**
 * One-vs-rest L1 logistic regression over K classes, and the choice of λ.
 *
 * Class k's model separates its samples (y = 1) from all others (y = 0); a sample is predicted as
 * argmax_k η_k. Three ways to choose λ:
 *   - a fixed λ, shared by all classes (fitAtLambda);
 *   - a target support size s, per class (fitToSupportSize, regularization-path.ts);
 *   - K-fold cross-validation on one λ grid shared by the classes, as cv.glmnet: folds stratified by
 *     class, each fold's training part scaled on its own; the held-out loss of a sample is
 *     Σ_k [log(1 + e^{η_k}) − y_k η_k]; CV(λ) is its mean over folds and SE(λ) the standard error of the
 *     fold means; the one-standard-error rule takes the largest λ with CV(λ) ≤ CV(λ_min) + SE(λ_min).
 *     The path stops early once CV(λ) has stayed above that band for 5 steps past the minimum.
 *
 * Work is bounded by counts (path points, bisections, solver passes, and an optional WorkBudget
 * shared by all fits of a selection), never by time: the same request gives the same model on a fast
 * and a slow machine.
 */
import { CvCurve, stratifiedFolds } from './cross-validation.js';
import {
  decision,
  linearPredictor,
  logLoss,
  standardize,
  type Design,
  type FeatureScaling,
  type SolverOptions,
} from './design.js';
import { lambdaMax, type BinaryFit } from './logistic.js';
import {
  defaultMinRatio,
  fitAtLambda,
  fitToSupportSize,
  lambdaGrid,
  pathStep,
} from './regularization-path.js';

export type Selection =
  { kind: 'lambda'; lambda: number } | { kind: 'support'; size: number } | { kind: 'cv'; folds: number };

export interface OneVsRestOptions extends SolverOptions {
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
  /** One fit per class (coefficients on the scaled features). */
  fits: BinaryFit[];
  /** The λ shared by all classes, or null when each class has its own (support-size selection). */
  lambda: number | null;
  /** Training accuracy of argmax_k η_k. */
  accuracy: number;
  cv?: CrossValidation;
}

/** One-vs-rest fits of `labels` (class index per sample, 0 … K−1), λ chosen by `selection`. */
export function fitOneVsRest(
  rows: readonly ArrayLike<number>[],
  labels: readonly number[],
  classCount: number,
  selection: Selection,
  options: OneVsRestOptions = {},
): OneVsRestFit {
  const design = standardize(rows, options.exclude, options.scaling);
  let lambda: number | null = null;
  let cv: CrossValidation | undefined;
  if (selection.kind === 'lambda') lambda = selection.lambda;
  const { budget } = options;
  if (selection.kind === 'cv') {
    // Two thirds of a budget for the folds, the rest for the final fits.
    const folds = budget && { ...options, budget: budget.share((2 / 3) * budget.left) };
    cv = crossValidate(rows, labels, classCount, selection.folds, folds ?? options);
    lambda = cv.lambda1se;
  }
  const fits = Array.from({ length: classCount }, (_, k) => {
    const y = Float64Array.from(labels, (c) => (c === k ? 1 : 0));
    // Each class gets an equal share of what is left of a budget.
    const own = budget ? { ...options, budget: budget.share(budget.left / (classCount - k)) } : options;
    return lambda === null
      ? fitToSupportSize(design, y, (selection as { size: number }).size, own)
      : fitAtLambda(design, y, lambda, own);
  });
  const eta = fits.map((fit) => linearPredictor(design, fit.coef, fit.intercept));
  const correct = labels.filter((c, i) => argmaxAt(eta, i) === c).length;
  return { design, fits, lambda, accuracy: correct / labels.length, cv };
}

function argmaxAt(scores: readonly Float64Array[], i: number): number {
  let best = 0;
  for (let k = 1; k < scores.length; k++) if (scores[k][i] > scores[best][i]) best = k;
  return best;
}

/** K-fold CV of the one-vs-rest path on a grid shared by all classes (see the module docstring). */
export function crossValidate(
  rows: readonly ArrayLike<number>[],
  labels: readonly number[],
  classCount: number,
  folds: number,
  options: OneVsRestOptions = {},
): CrossValidation {
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
        const fit = pathStep(
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
          loss += logLoss(eta, labels[i] === k ? 1 : 0);
        }
      }
      losses.push(loss / part.test.length);
    }
    heldOutEta.push(etas);
    if (curve.add(losses) || options.budget?.exhausted) break;
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
