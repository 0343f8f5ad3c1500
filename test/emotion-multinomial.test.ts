/**
 * The multinomial (softmax) L1 logistic regression (src/sparse/multinomial.ts) and its
 * λ selection (multinomial-path.ts), checked against references: the KKT conditions recomputed
 * here from scratch; the exact equivalence of a 2-class multinomial fit with the binary L1 fit
 * (β = B₁ − B₂, same objective); scikit-learn's multinomial saga on the same problems; and planted
 * structure recovered.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { fitMultinomialSelection } from '../src/sparse/multinomial-path.js';
import { standardize, WorkBudget, type Design } from '../src/sparse/design.js';
import { fitBinary } from '../src/sparse/logistic.js';
import {
  fitMultinomial,
  multinomialLambdaMax,
  multinomialPredictor,
  type MultinomialFit,
} from '../src/sparse/multinomial.js';
import { exportMultinomial } from '../tools/solvers/export-multinomial.js';
import { plantedEmotions, plantedLogistic } from '../tools/solvers/planted.js';
import { repoRoot, runPython } from './helpers/tiny-model.js';

/** The largest KKT violation, from first principles (softmax, gradient, subgradient conditions). */
function kkt(design: Design, labels: number[], K: number, fit: MultinomialFit): number {
  const { n, p, X } = design;
  const eta = multinomialPredictor(design, fit.coef, fit.intercept);
  let worst = 0;
  const prob = (i: number, k: number) => {
    const row = Array.from({ length: K }, (_, l) => eta[i * K + l]);
    const max = Math.max(...row);
    return Math.exp(row[k] - max) / row.reduce((s, v) => s + Math.exp(v - max), 0);
  };
  for (let k = 0; k < K; k++) {
    const r = Array.from({ length: n }, (_, i) => (prob(i, k) - (labels[i] === k ? 1 : 0)) / n);
    worst = Math.max(worst, Math.abs(r.reduce((a, b) => a + b, 0)));
    for (let j = 0; j < p; j++) {
      let g = 0;
      for (let i = 0; i < n; i++) g += X[j * n + i] * r[i];
      const b = fit.coef[k][j];
      worst = Math.max(
        worst,
        b !== 0 ? Math.abs(g + fit.lambda * Math.sign(b)) : Math.max(Math.abs(g) - fit.lambda, 0),
      );
    }
  }
  return worst;
}

// Before the first subtest: a top-level await after one lets tap end the file's test when that
// subtest finishes first, and the later subtests are never run (seen on a slow machine).
const probe = await runPython(['-c', 'import sklearn']);

t.test('KKT conditions hold at the solution (n > p and n < p)', async (t) => {
  for (const [K, m, p, ratio] of [
    [3, 30, 20, 0.3],
    [5, 6, 120, 0.15],
    [8, 4, 64, 0.05],
  ]) {
    const { rows, labels } = plantedEmotions(K, m, p, 2, 3 + K, 1.5);
    const design = standardize(rows);
    const fit = fitMultinomial(design, labels, K, ratio * multinomialLambdaMax(design, labels, K));
    t.ok(fit.converged, `K=${K} p=${p}: converged in ${fit.iterations} sweeps`);
    const violation = kkt(design, labels, K, fit);
    t.ok(violation <= 1e-6, `K=${K} n=${labels.length} p=${p}: KKT violation ${violation.toExponential(2)}`);
    t.ok(Math.abs(fit.intercept.reduce((a, b) => a + b, 0)) < 1e-9, 'intercepts sum to zero');
  }
});

t.test('B = 0 exactly at λ ≥ λ_max, and coefficients enter just below it', async (t) => {
  const { rows, labels } = plantedEmotions(4, 10, 30, 2, 9, 2);
  const design = standardize(rows);
  const top = multinomialLambdaMax(design, labels, 4);
  const at = fitMultinomial(design, labels, 4, top);
  t.equal(at.coef.flatMap((c) => [...c]).filter((v) => v !== 0).length, 0, 'all zero at λ_max');
  const below = fitMultinomial(design, labels, 4, 0.9 * top);
  t.ok(below.coef.flatMap((c) => [...c]).filter((v) => v !== 0).length > 0, 'nonzero at 0.9·λ_max');
});

t.test('two classes: the multinomial fit is the binary L1 fit with β = B₁ − B₂', async (t) => {
  const { X, y } = plantedLogistic(80, 25, 3, 21);
  const design = standardize(X);
  const labels = y.map((v) => (v === 1 ? 0 : 1)); // class 0 is the binary positive class
  for (const lambda of [0.02, 0.08]) {
    const binary = fitBinary(design, y, lambda);
    const multi = fitMultinomial(design, labels, 2, lambda);
    t.ok(
      Math.abs(binary.objective - multi.objective) < 1e-9,
      `λ=${lambda}: F ${multi.objective.toFixed(10)} vs binary ${binary.objective.toFixed(10)}`,
    );
    const gap = Math.max(
      ...Array.from(binary.coef, (b, j) => Math.abs(b - (multi.coef[0][j] - multi.coef[1][j]))),
    );
    t.ok(gap < 1e-5, `λ=${lambda}: max |β − (B₁ − B₂)| = ${gap.toExponential(2)}`);
  }
});

t.test(
  'objective and support agree with scikit-learn’s multinomial saga',
  { skip: probe.code !== 0 && 'no scikit-learn' },
  async (t) => {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'sklearn-multinomial-'));
    t.teardown(() => rmSync(folder, { recursive: true, force: true }));
    const file = path.join(folder, 'problems.json');
    writeFileSync(file, JSON.stringify(await exportMultinomial()));
    const result = await runPython([
      path.join(repoRoot, 'tools/solvers/compare_sklearn_multinomial.py'),
      file,
    ]);
    t.equal(result.code, 0, result.stderr);
    const rows = JSON.parse(result.stdout) as {
      name: string;
      objective_minus_ours: number;
      support_jaccard: number;
    }[];
    t.equal(rows.length, 3);
    for (const row of rows) {
      t.ok(
        row.objective_minus_ours > -1e-6,
        `${row.name}: F(sklearn) − F(ours) = ${row.objective_minus_ours.toExponential(2)}`,
      );
      t.ok(row.objective_minus_ours < 1e-4, `${row.name}: within 1e-4`);
      t.ok(row.support_jaccard >= 0.95, `${row.name}: support overlap ${row.support_jaccard.toFixed(3)}`);
    }
  },
);

t.test('selection: planted neurons by target support, and CV with the one-SE rule', async (t) => {
  const { rows, labels, owned } = plantedEmotions(10, 4, 128, 2, 17, 4);
  const bySupport = fitMultinomialSelection(rows, labels, 10, { kind: 'support', size: 2 });
  t.equal(bySupport.accuracy, 1);
  const mean = bySupport.fits.reduce((s, f) => s + f.coef.filter((v) => v !== 0).length, 0) / 10;
  t.ok(mean >= 2, `mean support ${mean} reaches the target`);
  bySupport.fits.forEach((f, k) => {
    const top = Array.from(f.coef.keys()).sort((a, b) => f.coef[b] - f.coef[a])[0];
    t.ok(owned[k].includes(top), `class ${k}: its largest weight is on a planted neuron`);
  });
  const cv = fitMultinomialSelection(rows, labels, 10, { kind: 'cv', folds: 4 });
  t.ok(cv.cv, 'a CV summary');
  t.ok(cv.cv!.lambda1se >= cv.cv!.lambdaMin, 'λ_1se ≥ λ_min');
  t.equal(cv.lambda, cv.cv!.lambda1se);
  t.ok(cv.cv!.accuracy >= 0.9, `held-out accuracy ${cv.cv!.accuracy}`);
  const masked = fitMultinomialSelection(
    rows,
    labels,
    10,
    { kind: 'lambda', lambda: 0.05 },
    { exclude: new Set(owned[0]) },
  );
  for (const j of owned[0])
    for (const f of masked.fits) t.equal(f.coef[j], 0, `excluded neuron ${j} never enters`);
});

t.test('a selection stops at its work budget and says it did not converge', async (t) => {
  // Separable classes and a tiny λ: the coefficients grow for a very long time.
  const { rows, labels } = plantedEmotions(40, 3, 256, 2, 23, 6);
  const budget = new WorkBudget(20);
  const fit = fitMultinomialSelection(rows, labels, 40, { kind: 'lambda', lambda: 1e-7 }, { budget });
  t.ok(budget.exhausted && budget.used === 20, `${budget.used} sweeps of 20 spent`);
  t.equal(fit.fits[0].converged, false, 'reported as not converged');
  t.ok(fit.fit.kktViolation > 1e-7, `KKT violation ${fit.fit.kktViolation.toExponential(2)} is reported`);
  t.ok(fit.fit.iterations >= 1, `${fit.fit.iterations} sweeps before the budget ran out`);
});
