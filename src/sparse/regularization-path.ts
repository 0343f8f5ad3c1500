/**
 * The regularisation path of L1 logistic regression (logistic.ts), and the two ways of reaching one
 * model along it: at a given λ, or with a given number of nonzero coefficients.
 *
 * Path: λ_t = λ_max · r^{t/(T−1)}, t = 0 … T−1, log-spaced from λ_max (the smallest λ with β = 0)
 * down to r·λ_max (glmnet's lambda.min.ratio: 0.01 when n < p, else 1e-4). Each λ_t is warm-started
 * from λ_{t−1}, and the sequential strong rule (Tibshirani et al. 2012) starts its working set with
 * the features where |g_j(λ_{t−1})| ≥ 2λ_t − λ_{t−1}; the solver's KKT pass over all features adds
 * any the rule missed, so the path is exact.
 *
 * Target support s: the path walks down from λ_max until more than s features enter, then bisects
 * log λ for a model with exactly s (or the largest ≤ s). Its work is bounded by counts (T path points,
 * 20 bisection steps, the solver's own caps, an optional WorkBudget), never by time, so it gives the
 * same model on any machine.
 */
import { supportSize, type Design, type SolverOptions } from './design.js';
import { fitBinary, lambdaMax, type BinaryFit } from './logistic.js';

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
    fits.push((previous = pathStep(design, y, lambda, previousLambda, options, previous)));
    previousLambda = lambda;
  }
  return fits;
}

/** One warm-started step of a path from λ_prev (where `previous` was fitted) to λ. */
export function pathStep(
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

export type SupportOptions = SolverOptions & { nLambda?: number; lambdaMinRatio?: number };

/** Bisection steps on log λ between the last path point with ≤ s features and the first with more. */
const BISECTION_STEPS = 20;

/** The model with `target` nonzero coefficients (or the largest support ≤ target the path reaches). */
export function fitToSupportSize(
  design: Design,
  y: ArrayLike<number>,
  target: number,
  options: SupportOptions = {},
): BinaryFit {
  const grid = lambdaGrid(
    lambdaMax(design, y),
    options.nLambda ?? 50,
    options.lambdaMinRatio ?? Math.min(defaultMinRatio(design), 1e-3),
  );
  let best: BinaryFit | undefined;
  let previousLambda = grid[0];
  let over: BinaryFit | undefined;
  // Out of budget, a class still gets its first neuron(s): the walk goes on, counted, until one enters.
  const firstNeuron = { ...options, budget: options.budget?.overdraft() };
  for (const lambda of grid) {
    const empty = !best || supportSize(best.coef) === 0;
    const fit = pathStep(design, y, lambda, previousLambda, empty ? firstNeuron : options, best);
    previousLambda = lambda;
    if (supportSize(fit.coef) > target) {
      over = fit;
      break;
    }
    best = fit;
    if (supportSize(fit.coef) === target || (options.budget?.exhausted && supportSize(fit.coef) > 0))
      return fit;
  }
  if (!best) return fitBinary(design, y, grid[0], options);
  if (!over) return best;
  let hi = best.lambda;
  let lo = over.lambda;
  for (let i = 0; i < BISECTION_STEPS; i++) {
    const mid = Math.sqrt(hi * lo);
    const fit = fitBinary(design, y, mid, options, {
      coef: best.coef,
      intercept: best.intercept,
      bounds: best.bounds,
    });
    const size = supportSize(fit.coef);
    if (size > target) lo = mid;
    else {
      hi = mid;
      best = fit;
      if (size === target || options.budget?.exhausted) break;
    }
  }
  return best;
}
