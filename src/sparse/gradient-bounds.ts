/**
 * Safe screening of the binary solver's KKT pass (logistic.ts). The gradient is g = Xᵀ r with r = (σ(η) − y)/n. When r moves by Δ,
 * the few samples with the largest |Δ_i| update an estimate g̃ exactly (g̃ += Δ_i x_i), and the rest
 * Δ′ only widens an error bound: by Cauchy–Schwarz |Σ_i Δ′_i x_ij| ≤ ‖x_j‖ ‖Δ′‖, with ‖x_j‖ the
 * feature's own column norm. (No bound common to all columns holds for every scaling: per-neuron
 * standardisation gives ‖x_j‖ = √n, but with shared scaling a wide neuron's column is several times
 * longer.) The bounds keep E, the sum of every ‖Δ′‖ so far, and for each feature g̃_j and E at its
 * last exact evaluation, so |g_j| ≤ |g̃_j| + ‖x_j‖ (E_now − E_then). A zero coefficient whose bound
 * is ≤ λ satisfies its KKT condition without computing g_j, so most of the O(np) pass is skipped
 * along a path.
 */
import { columnNorms, type Design } from './design.js';

export class GradientBounds {
  private readonly estimateOf: Float64Array;
  private readonly errorAt: Float64Array;
  private error = 0;
  private readonly residual: Float64Array;
  private readonly columnNorm: Float64Array;
  private readonly longestColumn: number;

  constructor(
    private readonly design: Design,
    residual: Float64Array,
    gradient: Float64Array,
  ) {
    this.columnNorm = columnNorms(design);
    this.longestColumn = this.columnNorm.reduce((max, norm) => Math.max(max, norm), 0);
    this.residual = Float64Array.from(residual);
    this.estimateOf = Float64Array.from(gradient);
    this.errorAt = new Float64Array(gradient.length);
  }

  /**
   * The residual moved to `residual`: up to 16 of the largest |Δ_i| go into g̃ exactly, until the
   * widest error bound max_j ‖x_j‖ ‖Δ′‖ is ≤ `budget`.
   */
  move(residual: Float64Array, budget: number) {
    const { n, p, X } = this.design;
    const delta = residual.map((r, i) => r - this.residual[i]);
    let rest = delta.reduce((sum, d) => sum + d * d, 0);
    const order = Array.from(delta.keys()).sort((a, b) => Math.abs(delta[b]) - Math.abs(delta[a]));
    for (let k = 0; k < 16 && this.longestColumn * Math.sqrt(Math.max(rest, 0)) > budget; k++) {
      const i = order[k];
      const d = delta[i];
      for (let j = 0; j < p; j++) this.estimateOf[j] += d * X[j * n + i];
      rest -= d * d;
    }
    this.error += Math.sqrt(Math.max(rest, 0));
    this.residual.set(residual);
  }

  /** |g̃_j|: the estimate without its error bound (what a heuristic such as the strong rule needs). */
  estimate(j: number): number {
    return Math.abs(this.estimateOf[j]);
  }

  /** An upper bound on |g_j| that holds for any design. */
  bound(j: number): number {
    return Math.abs(this.estimateOf[j]) + this.columnNorm[j] * (this.error - this.errorAt[j]);
  }

  exact(j: number, g: number) {
    this.estimateOf[j] = g;
    this.errorAt[j] = this.error;
  }
}
