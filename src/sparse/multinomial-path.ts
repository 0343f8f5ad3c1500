/**
 * λ selection for the multinomial fit (sparse-multinomial.ts), with the same three choices as the
 * one-vs-rest path (regularization-path.ts): a fixed λ; a target support, here the mean number of
 * neurons per class (all classes share one λ, so each class cannot be given its own count): the
 * largest λ of the grid from λ_max down, warm-started, at which the mean reaches it; or k-fold
 * cross-validation of the held-out multinomial deviance, picking the largest λ within one standard
 * error of the best (glmnet's rule). A whole selection has a work budget counted in sweeps over the
 * classes (options.budget, default MULTINOMIAL_SWEEP_LIMIT), never in time: once it is spent, fits
 * stop where they are and report converged: false, and the same request stops at the same sweep on
 * any machine.
 */
import { CvCurve, stratifiedFolds } from './cross-validation.js';
import { decision, standardize, WorkBudget, type Design } from './design.js';
import type { BinaryFit } from './logistic.js';
import {
  fitMultinomial,
  multinomialLambdaMax,
  multinomialPredictor,
  softmaxLoss,
  type MultinomialFit,
} from './multinomial.js';
import type { CrossValidation, OneVsRestOptions, Selection } from './one-vs-rest.js';
import { defaultMinRatio, lambdaGrid } from './regularization-path.js';

/** What a composition needs of each class's fit, from either solver. */
export type ClassFit = Pick<
  BinaryFit,
  'lambda' | 'coef' | 'intercept' | 'objective' | 'iterations' | 'converged'
>;

export interface MultinomialSelectionFit {
  design: Design;
  fits: ClassFit[];
  lambda: number;
  /** Training accuracy of argmax_k η_k. */
  accuracy: number;
  cv?: CrossValidation;
  fit: MultinomialFit;
}

/**
 * Sweeps over the classes one multinomial selection may spend (a tiny λ on separable data can take
 * minutes to converge). The whole wheel on the embedded model spends about 30 ms a sweep on two cores.
 */
export const MULTINOMIAL_SWEEP_LIMIT = 2000;

const meanSupport = (fit: MultinomialFit) =>
  fit.coef.reduce((count, c) => count + c.reduce((s, v) => s + (v !== 0 ? 1 : 0), 0), 0) / fit.coef.length;

export function fitMultinomialSelection(
  rows: readonly ArrayLike<number>[],
  labels: readonly number[],
  classCount: number,
  selection: Selection,
  options: OneVsRestOptions = {},
): MultinomialSelectionFit {
  const design = standardize(rows, options.exclude, options.scaling);
  const budget = options.budget ?? new WorkBudget(MULTINOMIAL_SWEEP_LIMIT);
  const solver = { tol: options.tol, maxIter: options.maxIter, budget };
  // A support search may walk further down than a cross-validation needs (as fitToSupportSize does):
  // on separable data, few neurons per class can be enough until λ is small.
  const grid = (minRatio = defaultMinRatio(design)) =>
    lambdaGrid(
      multinomialLambdaMax(design, labels, classCount),
      options.nLambda ?? 30,
      options.lambdaMinRatio ?? minRatio,
    );
  let fit: MultinomialFit | undefined;
  let cv: CrossValidation | undefined;
  if (selection.kind === 'lambda') {
    fit = fitMultinomial(design, labels, classCount, selection.lambda, solver);
  } else if (selection.kind === 'support') {
    for (const lambda of grid(Math.min(defaultMinRatio(design), 1e-3))) {
      fit = fitMultinomial(design, labels, classCount, lambda, solver, fit);
      if (meanSupport(fit) >= selection.size || budget.exhausted) break;
    }
  } else {
    // Two thirds of the budget for the folds, the rest for the final fit at λ_1se.
    const folds = new WorkBudget(Math.floor((2 / 3) * budget.left));
    cv = crossValidateMultinomial(rows, labels, classCount, selection.folds, grid(), {
      ...options,
      ...solver,
      budget: folds,
    });
    budget.spend(folds.used);
    fit = fitMultinomial(design, labels, classCount, cv.lambda1se, solver);
  }
  const final = fit!;
  const eta = multinomialPredictor(design, final.coef, final.intercept);
  const fits: ClassFit[] = final.coef.map((coef, k) => ({
    lambda: final.lambda,
    coef,
    intercept: final.intercept[k],
    objective: final.objective,
    iterations: final.iterations,
    converged: final.converged,
  }));
  return {
    design,
    fits,
    lambda: final.lambda,
    accuracy: accuracyOf(eta, labels, classCount),
    cv,
    fit: final,
  };
}

function accuracyOf(eta: Float64Array, labels: readonly number[], K: number): number {
  let correct = 0;
  labels.forEach((c, i) => {
    let best = 0;
    for (let k = 1; k < K; k++) if (eta[i * K + k] > eta[i * K + best]) best = k;
    if (best === c) correct += 1;
  });
  return correct / labels.length;
}

/** η (n × K, row-major) of raw rows under a fit made on `design`. */
function predictRaw(design: Design, fit: MultinomialFit, rows: readonly ArrayLike<number>[]): Float64Array {
  const K = fit.coef.length;
  const eta = new Float64Array(rows.length * K);
  rows.forEach((row, i) =>
    fit.coef.forEach(
      (coef, k) => (eta[i * K + k] = decision(design, { coef, intercept: fit.intercept[k] }, row)),
    ),
  );
  return eta;
}

function crossValidateMultinomial(
  rows: readonly ArrayLike<number>[],
  labels: readonly number[],
  classCount: number,
  folds: number,
  lambdas: number[],
  options: OneVsRestOptions,
): CrossValidation {
  const foldOf = stratifiedFolds(labels, folds, options.seed);
  const parts = Array.from({ length: folds }, (_, f) => {
    const train = labels.flatMap((_, i) => (foldOf[i] !== f ? [i] : []));
    const test = labels.flatMap((_, i) => (foldOf[i] === f ? [i] : []));
    const trainLabels = train.map((i) => labels[i]);
    if (new Set(trainLabels).size < classCount)
      throw new RangeError('a class has all its samples in one fold');
    const design = standardize(
      train.map((i) => rows[i]),
      options.exclude,
      options.scaling,
    );
    return { train, test, trainLabels, design, previous: undefined as MultinomialFit | undefined };
  }).filter((part) => part.test.length > 0);
  const curve = new CvCurve(parts.map((part) => part.test.length));
  const heldOut: Float64Array[] = []; // [λ] η of every sample, predicted by the fold that held it out
  for (let t = 0; t < lambdas.length; t++) {
    const eta = new Float64Array(rows.length * classCount);
    const losses: number[] = [];
    for (const part of parts) {
      const fit = fitMultinomial(
        part.design,
        part.trainLabels,
        classCount,
        lambdas[t],
        options,
        part.previous,
      );
      part.previous = fit;
      const testEta = predictRaw(
        part.design,
        fit,
        part.test.map((i) => rows[i]),
      );
      part.test.forEach((i, r) =>
        eta.set(testEta.subarray(r * classCount, (r + 1) * classCount), i * classCount),
      );
      losses.push(
        softmaxLoss(
          testEta,
          part.test.map((i) => labels[i]),
          classCount,
        ),
      );
    }
    heldOut.push(eta);
    if (curve.add(losses) || options.budget?.exhausted) break;
  }
  const { cvm, cvsd, tMin, t1se } = curve;
  const tried = lambdas.slice(0, cvm.length);
  return {
    folds,
    lambdas: tried,
    cvm,
    cvsd,
    lambdaMin: tried[tMin],
    lambda1se: tried[t1se],
    accuracy: accuracyOf(heldOut[t1se], labels, classCount),
  };
}
