/**
 * The binary estimator in scikit-learn's shape, for tests that compare with scikit-learn's own
 * (`fit(X, y)`, `coef_` on the original feature scale): `fit` scales X per neuron, solves at a fixed
 * `lambda` (reached by a warm-started path) or at the λ that gives `support` nonzero coefficients,
 * and exposes `coef_`/`intercept_`, plus `lambda_`, `objective_`, `nIter_` and `converged_`.
 * The service itself uses the functions of src/sparse/ directly.
 */
import { sigmoid, standardize, type SolverOptions } from '../../src/sparse/design.js';
import { fitAtLambda, fitToSupportSize } from '../../src/sparse/regularization-path.js';

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
