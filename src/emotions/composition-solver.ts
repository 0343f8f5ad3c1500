/**
 * The CPU-bound half of emotion composition: the sparse fits of a composition and the atlas of one.
 * They run on a worker thread (solver-thread.ts), so a whole-wheel fit or a cross-validation, seconds
 * of CPU, never holds the event loop and the requests behind it; `threads: 0` runs them in-process.
 *
 * The attribution vectors go to the thread as they are (Float32Array rows); the coefficients come
 * back as Float64Array buffers, moved rather than copied.
 */
import { buildAtlas } from './atlas.js';
import type { Atlas, Composition, CompositionModel } from './types.js';
import { WorkBudget, type FeatureScaling, type WorkReport } from '../sparse/design.js';
import { fitMultinomialSelection } from '../sparse/multinomial-path.js';
import { fitOneVsRest, type Selection } from '../sparse/one-vs-rest.js';
import { InProcess, type Runner } from '../threads/in-process.js';
import { siblingModule, WorkerPool } from '../threads/worker-pool.js';

export interface CompositionProblem {
  /** One attribution vector per prompt. */
  rows: Float32Array[];
  /** The concept (class index) of each row. */
  labels: number[];
  classCount: number;
  selection: Selection;
  model: CompositionModel;
  exclude: number[];
  scaling: FeatureScaling;
  /**
   * Sweeps over the classes a multinomial selection may spend (FIT_MAX_SWEEPS). One-vs-rest fits
   * have no such budget: their work is bounded by counts (path points, bisections, Newton steps).
   */
  maxSweeps: number;
}

export interface SolvedClass {
  /** Weights on the scaled features; 0 for neurons outside the composition. */
  coef: Float64Array;
  lambda: number;
  objective: number;
  iterations: number;
  converged: boolean;
}

export interface SolvedComposition {
  classes: SolvedClass[];
  /** The λ shared by all classes, or null when each has its own. */
  lambda: number | null;
  accuracy: number;
  features: number;
  cv?: { folds: number; lambdaMin: number; lambda1se: number; accuracy: number };
  /** The solver passes spent: proximal Newton steps (one-vs-rest) or sweeps over the classes (multinomial). */
  work: WorkReport;
}

export type SolverRequest =
  | { kind: 'composition'; problem: CompositionProblem }
  | { kind: 'atlas'; composition: Pick<Composition, 'concepts'>; factors: number };

export function solveComposition(problem: CompositionProblem): SolvedComposition {
  const { rows, labels, classCount, selection } = problem;
  const multinomial = problem.model === 'multinomial';
  const budget = new WorkBudget(multinomial ? problem.maxSweeps : Infinity);
  const options = { exclude: new Set(problem.exclude), scaling: problem.scaling, budget };
  const result = multinomial
    ? fitMultinomialSelection(rows, labels, classCount, selection, options)
    : fitOneVsRest(rows, labels, classCount, selection, options);
  const { cv } = result;
  return {
    classes: result.fits.map(({ coef, lambda, objective, iterations, converged }) => ({
      coef,
      lambda,
      objective,
      iterations,
      converged,
    })),
    lambda: result.lambda,
    accuracy: result.accuracy,
    features: result.design.p,
    work: budget.report(),
    ...(cv
      ? { cv: { folds: cv.folds, lambdaMin: cv.lambdaMin, lambda1se: cv.lambda1se, accuracy: cv.accuracy } }
      : {}),
  };
}

/** Answers one request; the thread's handler, and the in-process path. */
export function solve(request: SolverRequest): SolvedComposition | Atlas {
  if (request.kind === 'composition') return solveComposition(request.problem);
  // The composition's neurons carry their catalogue labels; the catalogue stays on the main thread.
  const { composition, factors } = request;
  const labels = new Map<number, string>();
  for (const { neurons } of Object.values(composition.concepts))
    for (const { neuron, label } of neurons) if (label !== undefined) labels.set(neuron, label);
  return buildAtlas(composition, factors, (id) => labels.get(id));
}

export class CompositionSolver {
  private readonly runner: Runner<SolverRequest, SolvedComposition | Atlas>;

  /** `threads`: worker threads for the fits (0: on the calling thread). */
  constructor(threads = 1) {
    this.runner =
      threads > 0
        ? new WorkerPool(siblingModule(import.meta.url, 'solver-thread'), threads)
        : new InProcess<SolverRequest, SolvedComposition | Atlas>(solve);
  }

  compose(problem: CompositionProblem): Promise<SolvedComposition> {
    return this.runner.run({ kind: 'composition', problem }) as Promise<SolvedComposition>;
  }

  atlas(composition: Pick<Composition, 'concepts'>, factors: number): Promise<Atlas> {
    return this.runner.run({ kind: 'atlas', composition, factors }) as Promise<Atlas>;
  }

  close(): Promise<void> {
    return this.runner.close();
  }
}
