/**
 * Writes L1 logistic problems, with this project's solutions, for tools/solvers/compare_sklearn.py:
 *
 *   npx tsx tools/solvers/export-problems.ts /tmp/problems.json
 *   /usr/bin/python3 tools/solvers/compare_sklearn.py /tmp/problems.json
 *
 * Each problem is planted (tools/solvers/planted.ts) and standardised here; X is written already
 * standardised so both sides solve the same problem, at λ = ratio · λ_max.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fitAtLambda } from '../../src/sparse/regularization-path.js';
import { standardize } from '../../src/sparse/design.js';
import { lambdaMax } from '../../src/sparse/logistic.js';
import { plantedLogistic } from './planted.js';

export interface ExportedProblem {
  name: string;
  X: number[][];
  y: number[];
  lambda: number;
  ours: { objective: number; coef: number[]; intercept: number; seconds: number; converged: boolean };
}

export const DEFAULT_CASES: [n: number, p: number, s: number, ratio: number][] = [
  [100, 50, 4, 0.3],
  [100, 50, 4, 0.05],
  [60, 400, 5, 0.2],
  [60, 400, 5, 0.05],
  [378, 2560, 5, 0.1],
];

export function exportProblems(cases = DEFAULT_CASES, seed = 7): ExportedProblem[] {
  return cases.map(([n, p, s, ratio], index) => {
    const { X, y } = plantedLogistic(n, p, s, seed + index);
    const design = standardize(X);
    const lambda = ratio * lambdaMax(design, y);
    const start = performance.now();
    const fit = fitAtLambda(design, y, lambda);
    const seconds = (performance.now() - start) / 1000;
    const rows = Array.from({ length: n }, (_, i) => Array.from({ length: p }, (_, j) => design.X[j * n + i]));
    return {
      name: `n=${n} p=${p} s=${s} λ=${ratio}·λmax`,
      X: rows,
      y,
      lambda,
      ours: {
        objective: fit.objective,
        coef: Array.from(fit.coef),
        intercept: fit.intercept,
        seconds,
        converged: fit.converged,
      },
    };
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (!out) throw new Error('usage: export-problems.ts OUT.json');
  writeFileSync(out, JSON.stringify(exportProblems()));
  console.log(`wrote ${out}`);
}
