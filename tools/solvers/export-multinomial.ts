/**
 * Writes multinomial L1 logistic problems, with this project's solutions (src/attribution/
 * sparse-multinomial.ts), for tools/solvers/compare_sklearn_multinomial.py:
 *
 *   npx tsx tools/solvers/export-multinomial.ts /tmp/multinomial.json
 *   /usr/bin/python3 tools/solvers/compare_sklearn_multinomial.py /tmp/multinomial.json
 *
 * Problems are planted emotions (tools/solvers/planted.ts), standardised here and written already
 * standardised, at λ = ratio · λ_max.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { standardize } from '../../src/sparse/design.js';
import { fitMultinomial, multinomialLambdaMax } from '../../src/sparse/multinomial.js';
import { plantedEmotions } from './planted.js';

export interface ExportedMultinomial {
  name: string;
  X: number[][];
  labels: number[];
  classes: number;
  lambda: number;
  ours: { objective: number; coef: number[][]; intercept: number[]; seconds: number; converged: boolean };
}

/** [classes, samples per class, features, λ / λ_max] */
export const MULTINOMIAL_CASES: [K: number, m: number, p: number, ratio: number][] = [
  [3, 30, 20, 0.3],
  [4, 20, 40, 0.1],
  [6, 8, 60, 0.2],
];

export async function exportMultinomial(cases = MULTINOMIAL_CASES, seed = 5): Promise<ExportedMultinomial[]> {
  const problems: ExportedMultinomial[] = [];
  for (const [index, [K, m, p, ratio]] of cases.entries()) {
    const { rows, labels } = plantedEmotions(K, m, p, 2, seed + index, 1.5);
    const design = standardize(rows);
    const lambda = ratio * multinomialLambdaMax(design, labels, K);
    const start = performance.now();
    const fit = await fitMultinomial(design, labels, K, lambda);
    const seconds = (performance.now() - start) / 1000;
    const n = labels.length;
    problems.push({
      name: `K=${K} n=${n} p=${p} λ=${ratio}·λmax`,
      X: Array.from({ length: n }, (_, i) => Array.from({ length: p }, (_, j) => design.X[j * n + i])),
      labels,
      classes: K,
      lambda,
      ours: {
        objective: fit.objective,
        coef: fit.coef.map((c) => Array.from(c)),
        intercept: Array.from(fit.intercept),
        seconds,
        converged: fit.converged,
      },
    });
  }
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? '/tmp/multinomial.json';
  writeFileSync(out, JSON.stringify(await exportMultinomial()));
  console.log(`wrote ${out}`);
}
