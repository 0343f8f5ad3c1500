/**
 * Synthetic problems with planted sparse structure, generated from a seed (mulberry32 + Box–Muller),
 * for the solver tests, tools/solvers/compare_sklearn.py and bench/emotions.ts.
 *
 *   - plantedLogistic: x_i ~ N(0, I_p), y_i ~ Bernoulli(σ(b + x_i·β*)) with s nonzero β*_j = ±strength.
 *   - plantedEmotions: K classes × m samples ("emotion words × templates") in p features ("neurons");
 *     class k owns s neurons; a sample is N(0, I_p) noise plus `strength` on its class's neurons.
 */
import { mulberry32 } from '../../src/sparse/cross-validation.js';

export function gaussian(random: () => number): () => number {
  return () => {
    const u = 1 - random();
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

export interface PlantedLogistic {
  X: Float64Array[];
  y: number[];
  support: number[];
  beta: number[];
}

export function plantedLogistic(n: number, p: number, s: number, seed = 7, strength = 2): PlantedLogistic {
  const random = mulberry32(seed);
  const normal = gaussian(random);
  const support = Array.from({ length: s }, (_, k) => Math.floor((k * p) / s + random() * (p / s / 2)));
  const beta = new Array<number>(p).fill(0);
  support.forEach((j, k) => (beta[j] = k % 2 === 0 ? strength : -strength));
  const X = Array.from({ length: n }, () => Float64Array.from({ length: p }, normal));
  const y = X.map((x) => {
    let eta = -0.5;
    for (const j of support) eta += beta[j] * x[j];
    return random() < 1 / (1 + Math.exp(-eta)) ? 1 : 0;
  });
  return { X, y, support, beta };
}

export interface PlantedEmotions {
  rows: Float32Array[];
  labels: number[];
  /** The neurons planted for each class. */
  owned: number[][];
}

export function plantedEmotions(K: number, m: number, p: number, s = 3, seed = 11, strength = 3): PlantedEmotions {
  const random = mulberry32(seed);
  const normal = gaussian(random);
  const owned = Array.from({ length: K }, () => Array.from({ length: s }, () => Math.floor(random() * p)));
  const rows: Float32Array[] = [];
  const labels: number[] = [];
  for (let k = 0; k < K; k++)
    for (let r = 0; r < m; r++) {
      const row = Float32Array.from({ length: p }, normal);
      for (const j of owned[k]) row[j] += strength;
      rows.push(row);
      labels.push(k);
    }
  return { rows, labels, owned };
}

/**
 * A binary problem whose scaled columns are far longer than √n under shared scaling: a few "wide"
 * features (spread `wide`) carry the planted support, the many others are narrow (spread 0.3–1.3),
 * so the shared scale (the RMS spread) is small and each wide column is several times √n long.
 * This is the shape of attribution vectors, where a few neurons move far more than the rest.
 */
export function plantedWideColumns(n: number, p: number, s: number, seed = 7, wide = 6): PlantedLogistic {
  const random = mulberry32(seed);
  const normal = gaussian(random);
  const every = Math.floor(p / (2 * s));
  const wideColumns = Array.from({ length: 2 * s }, (_, k) => k * every);
  const spread = Array.from({ length: p }, () => 0.3 + random());
  for (const j of wideColumns) spread[j] = wide;
  const support = wideColumns.slice(0, s);
  const beta = new Array<number>(p).fill(0);
  support.forEach((j, k) => (beta[j] = (k % 2 === 0 ? 1.5 : -1.5) / wide));
  const X = Array.from({ length: n }, () => Float64Array.from({ length: p }, (_, j) => spread[j] * normal()));
  const y = X.map((x) => {
    let eta = 0.2;
    for (const j of support) eta += beta[j] * x[j];
    return random() < 1 / (1 + Math.exp(-eta)) ? 1 : 0;
  });
  return { X, y, support, beta };
}
