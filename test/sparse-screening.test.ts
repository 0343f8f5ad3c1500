/**
 * The binary solver's safe screening under shared scaling (src/sparse/gradient-bounds.ts). With
 * one scale for all neurons, a wide neuron's column is several times √n long, and a bound that
 * assumed ‖x_j‖ ≤ √n skipped features that violate their KKT condition while the fit reported
 * converged. Here designs with columns far longer than √n are fitted along paths and by support
 * searches, and every solution is checked two ways that share nothing with the solver: its KKT
 * conditions recomputed from first principles over all features, and its objective against
 * scikit-learn (tools/solvers/compare_sklearn.py).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { standardize, type Design } from '../src/sparse/design.js';
import { lambdaMax, type BinaryFit } from '../src/sparse/logistic.js';
import { fitPath, fitToSupportSize, lambdaGrid } from '../src/sparse/regularization-path.js';
import { plantedWideColumns } from '../tools/solvers/planted.js';
import { repoRoot, runPython } from './helpers/tiny-model.js';

const TOL = 1e-7;

/** Rows of the scaled design, sample by sample (a layout of its own, not the solver's). */
function rowsOf(design: Design): number[][] {
  return Array.from({ length: design.n }, (_, i) =>
    Array.from({ length: design.p }, (_, j) => design.X[j * design.n + i]),
  );
}

/**
 * The largest violation of the L1 logistic KKT conditions at (b, w), from the definitions:
 * g = (1/n) Σ_i x_i (1/(1 + e^{−η_i}) − y_i); β_j ≠ 0 needs g_j = −λ sign β_j, β_j = 0 needs
 * |g_j| ≤ λ, and the unpenalised intercept needs Σ_i (p_i − y_i) = 0.
 */
function kktFromScratch(rows: number[][], y: number[], w: ArrayLike<number>, b: number, lambda: number) {
  const n = rows.length;
  const p = rows[0].length;
  const g = new Array<number>(p).fill(0);
  let gb = 0;
  for (let i = 0; i < n; i++) {
    let eta = b;
    for (let j = 0; j < p; j++) eta += rows[i][j] * w[j];
    const r = (1 / (1 + Math.exp(-eta)) - y[i]) / n;
    gb += r;
    for (let j = 0; j < p; j++) g[j] += rows[i][j] * r;
  }
  let worst = Math.abs(gb);
  for (let j = 0; j < p; j++) {
    const v = w[j] !== 0 ? Math.abs(g[j] + lambda * Math.sign(w[j])) : Math.max(Math.abs(g[j]) - lambda, 0);
    worst = Math.max(worst, v);
  }
  return worst;
}

const cases = [
  { n: 80, p: 300, s: 4, seed: 6 },
  { n: 80, p: 300, s: 4, seed: 20 },
  { n: 120, p: 400, s: 5, seed: 24 },
  { n: 60, p: 512, s: 3, seed: 28 },
];

const problems = cases.map(({ n, p, s, seed }) => {
  const { X, y } = plantedWideColumns(n, p, s, seed);
  const design = standardize(X, new Set(), 'shared');
  return { name: `n=${n} p=${p} seed=${seed}`, design, y, rows: rowsOf(design) };
});

t.test('shared scaling makes columns far longer than √n', (t) => {
  for (const { name, design, rows } of problems) {
    const longest = Math.max(
      ...Array.from({ length: design.p }, (_, j) => Math.hypot(...rows.map((row) => row[j]))),
    );
    t.ok(
      longest > 3 * Math.sqrt(design.n),
      `${name}: longest column ${(longest / Math.sqrt(design.n)).toFixed(1)}·√n`,
    );
  }
  t.end();
});

const solutions: { name: string; design: Design; rows: number[][]; y: number[]; fit: BinaryFit }[] = [];

t.test('every solution along paths and support searches satisfies KKT over all features', (t) => {
  for (const { name, design, y, rows } of problems) {
    const path = fitPath(design, y, lambdaGrid(lambdaMax(design, y), 30, 0.01));
    const searches = [1, 3, 5, 8].map((size) => fitToSupportSize(design, y, size));
    for (const fit of [...path, ...searches]) {
      const violation = kktFromScratch(rows, y, fit.coef, fit.intercept, fit.lambda);
      t.ok(fit.converged, `${name} λ=${fit.lambda.toExponential(3)}: reported converged`);
      t.ok(
        violation <= 1.5 * TOL,
        `${name} λ=${fit.lambda.toExponential(3)}: KKT violation from scratch ${violation.toExponential(2)} ≤ tol`,
      );
    }
    solutions.push(...searches.map((fit) => ({ name, design, rows, y, fit })));
  }
  t.end();
});

t.test('the support searches reach scikit-learn’s objective to 1e-6', async (t) => {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'screening-'));
  t.teardown(() => rmSync(folder, { recursive: true, force: true }));
  const file = path.join(folder, 'problems.json');
  const exported = solutions.map(({ name, rows, y, fit }) => ({
    name: `${name} support ${fit.coef.filter((c) => c !== 0).length}`,
    X: rows,
    y,
    lambda: fit.lambda,
    ours: {
      objective: fit.objective,
      coef: Array.from(fit.coef),
      intercept: fit.intercept,
      converged: fit.converged,
    },
  }));
  writeFileSync(file, JSON.stringify(exported));
  const result = await runPython([
    path.join(repoRoot, 'tools/solvers/compare_sklearn.py'),
    file,
    '--solvers',
    'liblinear',
  ]);
  t.equal(result.code, 0, result.stderr);
  const rows = JSON.parse(result.stdout) as { name: string; liblinear: { objective_minus_ours: number } }[];
  t.equal(rows.length, exported.length);
  for (const row of rows) {
    const gap = row.liblinear.objective_minus_ours;
    t.ok(gap > -1e-6, `${row.name}: F(sklearn) − F(ours) = ${gap.toExponential(2)}, ours not higher by 1e-6`);
    t.ok(gap < 1e-4, `${row.name}: within 1e-4 of sklearn`);
  }
});
