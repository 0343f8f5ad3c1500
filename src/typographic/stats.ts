/**
 * Proportions with their uncertainty: the Wilson score interval (Wilson, 1927), which unlike the
 * normal approximation stays inside [0, 1] and is sensible for 0 or n successes out of n.
 */

/** z for a two-sided 95% interval. */
export const Z95 = 1.959963984540054;

export interface Proportion {
  successes: number;
  n: number;
  /** successes / n; null when n = 0. */
  rate: number | null;
  /** The Wilson 95% interval; null when n = 0. */
  low: number | null;
  high: number | null;
}

/**
 * (p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n), p̂ = k/n.
 */
export function wilson(successes: number, n: number, z = Z95): Proportion {
  if (n === 0) return { successes, n, rate: null, low: null, high: null };
  const p = successes / n;
  const z2 = z * z;
  const centre = p + z2 / (2 * n);
  const spread = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  const denominator = 1 + z2 / n;
  return {
    successes,
    n,
    rate: p,
    // Exactly 0 for no success and 1 for all (the formula's rounding gives 1 − 1e-16).
    low: successes === 0 ? 0 : Math.max(0, (centre - spread) / denominator),
    high: successes === n ? 1 : Math.min(1, (centre + spread) / denominator),
  };
}
