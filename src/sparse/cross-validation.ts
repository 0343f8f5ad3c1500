/**
 * Cross-validation pieces shared by the one-vs-rest path (regularization-path.ts) and the
 * multinomial fit (multinomial-path.ts): seeded stratified folds and the CV curve with glmnet's
 * one-standard-error rule. Also the small seeded PRNG used for folds, initialisations and layouts.
 */

/** A small seeded PRNG (mulberry32): deterministic folds, initialisations and layouts. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fold of each sample: stratified by class, shuffled with a seeded generator. */
export function stratifiedFolds(labels: readonly number[], folds: number, seed = 1): number[] {
  const random = mulberry32(seed);
  const fold = new Array<number>(labels.length).fill(0);
  const byClass = new Map<number, number[]>();
  labels.forEach((c, i) => byClass.set(c, [...(byClass.get(c) ?? []), i]));
  let offset = 0;
  for (const members of byClass.values()) {
    for (let i = members.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [members[i], members[j]] = [members[j], members[i]];
    }
    members.forEach((sample, r) => (fold[sample] = (offset + r) % folds));
    offset = (offset + members.length) % folds;
  }
  return fold;
}

const PATIENCE = 5;

/**
 * The cross-validation curve along a λ path: the size-weighted mean held-out loss over the folds
 * (cvm) and its standard error (cvsd) per λ, the best λ (tMin) and the largest λ within one
 * standard error of it (t1se, glmnet's rule).
 */
export class CvCurve {
  readonly cvm: number[] = [];
  readonly cvsd: number[] = [];
  tMin = 0;
  private readonly total: number;

  constructor(private readonly foldSizes: readonly number[]) {
    this.total = foldSizes.reduce((a, b) => a + b, 0);
  }

  /**
   * Adds the next λ's mean held-out loss per fold. True when the path can stop: CV(λ) has stayed
   * above CV(λ_min) + SE(λ_min) for PATIENCE steps, so smaller λ (the costliest) cannot be chosen
   * by the one-standard-error rule unless the curve turns down again.
   */
  add(losses: readonly number[]): boolean {
    const { cvm, cvsd, foldSizes, total } = this;
    const t = cvm.length;
    cvm.push(losses.reduce((sum, loss, f) => sum + loss * foldSizes[f], 0) / total);
    const variance = losses.reduce((sum, loss, f) => sum + foldSizes[f] * (loss - cvm[t]) ** 2, 0) / total;
    cvsd.push(Math.sqrt(variance / Math.max(foldSizes.length - 1, 1)));
    if (cvm[t] < cvm[this.tMin]) this.tMin = t;
    const band = cvm[this.tMin] + cvsd[this.tMin];
    return t - this.tMin >= PATIENCE && cvm.slice(t - PATIENCE + 1).every((value) => value > band);
  }

  get t1se(): number {
    return this.cvm.findIndex((value) => value <= this.cvm[this.tMin] + this.cvsd[this.tMin]);
  }
}
