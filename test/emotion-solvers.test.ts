/**
 * The sparse solvers behind emotion composition: KKT conditions at the solution, agreement with
 * exact solutions of 1-D and 2-D problems, recovery of a planted support, the path and its CV, NMF,
 * and the feelings wheel's parity with the article's published file.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { FEELINGS_WHEEL, WHEEL_EMOTIONS, EMOTION_TEMPLATES } from '../src/emotions/feelings-wheel.js';
import { buildAtlas } from '../src/emotions/atlas.js';
import { NMF } from '../src/sparse/nmf.js';
import { mulberry32, stratifiedFolds } from '../src/sparse/cross-validation.js';
import { fitPath, fitToSupportSize, lambdaGrid } from '../src/sparse/regularization-path.js';
import { crossValidate, fitOneVsRest } from '../src/sparse/one-vs-rest.js';
import { kktViolation, linearPredictor, standardize, supportSize, WorkBudget } from '../src/sparse/design.js';
import { fitBinary, lambdaMax, lossGradient, objective } from '../src/sparse/logistic.js';
import { SparseLogisticRegression } from './helpers/sparse-logistic-regression.js';
import { plantedEmotions, plantedLogistic } from '../tools/solvers/planted.js';

const WHEEL_FILE = new URL('../../shared/reference/rn50x4/feelings-wheel.json', import.meta.url);

t.test('the feelings wheel matches the article’s file word for word', (t) => {
  const reference = JSON.parse(readFileSync(WHEEL_FILE, 'utf8'));
  t.same(FEELINGS_WHEEL, reference);
  t.equal(WHEEL_EMOTIONS.length, 126, '130 places, 126 distinct words');
  t.same(
    WHEEL_EMOTIONS.filter((e) => e.cores.length > 1).map((e) => [e.name, e.cores]),
    [
      ['overwhelmed', ['fearful', 'bad']],
      ['inferior', ['fearful', 'sad']],
      ['embarrassed', ['disgusted', 'sad']],
      ['disappointed', ['disgusted', 'sad']],
    ],
    'the words placed twice',
  );
  t.same(EMOTION_TEMPLATES, [
    'i am feeling {}',
    'Me feeling {} on my face',
    'a photo of me with a {} expression on my face',
  ]);
  t.end();
});

/** Largest KKT violation over all features and the intercept, recomputed from scratch. */
function kkt(
  X: readonly ArrayLike<number>[],
  y: number[],
  lambda: number,
  coef: Float64Array,
  intercept: number,
) {
  const design = standardize(X);
  const eta = linearPredictor(design, coef, intercept);
  const { gradient, interceptGradient } = lossGradient(design, y, eta);
  let worst = Math.abs(interceptGradient);
  for (let j = 0; j < design.p; j++) worst = Math.max(worst, kktViolation(gradient[j], coef[j], lambda));
  return worst;
}

t.test('KKT conditions hold at the solution (n < p and n > p)', (t) => {
  for (const [n, p] of [
    [60, 200],
    [300, 40],
  ]) {
    const { X, y } = plantedLogistic(n, p, 4, 3);
    const design = standardize(X);
    for (const ratio of [0.5, 0.1, 0.02]) {
      const lambda = ratio * lambdaMax(design, y);
      const fit = fitBinary(design, y, lambda, { tol: 1e-8 });
      t.ok(fit.converged, `n=${n} p=${p} λ=${ratio}·λmax converged in ${fit.iterations} steps`);
      t.ok(kkt(X, y, lambda, fit.coef, fit.intercept) <= 1e-8, 'max KKT violation ≤ 1e-8');
      t.ok(supportSize(fit.coef) > 0, 'a nonempty model below λ_max');
    }
  }
  t.end();
});

t.test('β = 0 exactly at λ ≥ λ_max, and the first feature enters just below it', (t) => {
  const { X, y } = plantedLogistic(80, 30, 3, 5);
  const design = standardize(X);
  const top = lambdaMax(design, y);
  t.equal(supportSize(fitBinary(design, y, top * 1.0001).coef), 0);
  t.equal(supportSize(fitBinary(design, y, top * 0.999).coef), 1);
  t.end();
});

/** Golden-section minimisation of a convex function on [lo, hi]. */
function golden(f: (x: number) => number, lo: number, hi: number): number {
  const r = (Math.sqrt(5) - 1) / 2;
  let a = lo;
  let b = hi;
  for (let i = 0; i < 200; i++) {
    const c = b - r * (b - a);
    const d = a + r * (b - a);
    if (f(c) < f(d)) b = d;
    else a = c;
  }
  return (a + b) / 2;
}

t.test('agrees with the exact solution of a 1-D problem (nested exact minimisation)', (t) => {
  const random = mulberry32(3);
  const x = Array.from({ length: 40 }, () => [random() * 4 - 2]);
  const y = x.map(([v]) => (random() < 1 / (1 + Math.exp(-1.5 * v + 0.3)) ? 1 : 0));
  const design = standardize(x);
  const z = Array.from({ length: 40 }, (_, i) => design.X[i]);
  const lambda = 0.05;
  // F(β) = min_b (1/n) Σ loss(b + β z_i) + λ|β|: the inner minimum is exact (Newton), the outer golden.
  const inner = (beta: number) => {
    let b = 0;
    for (let it = 0; it < 100; it++) {
      let g = 0;
      let h = 0;
      for (let i = 0; i < 40; i++) {
        const p = 1 / (1 + Math.exp(-(b + beta * z[i])));
        g += p - y[i];
        h += p * (1 - p);
      }
      b -= g / h;
    }
    const eta = Float64Array.from(z, (v) => b + beta * v);
    return { b, F: objective(eta, y, Float64Array.of(beta), lambda) };
  };
  const betaExact = golden((beta) => inner(beta).F, -10, 10);
  const fit = fitBinary(design, y, lambda, { tol: 1e-10 });
  t.ok(Math.abs(fit.coef[0] - betaExact) < 1e-6, `β ${fit.coef[0]} vs exact ${betaExact}`);
  t.ok(Math.abs(fit.intercept - inner(betaExact).b) < 1e-6, 'intercept');
  t.ok(fit.objective <= inner(betaExact).F + 1e-12, 'objective at least as low as the exact one');
  t.end();
});

t.test('agrees with a brute-force grid on a 2-D problem', (t) => {
  const { X, y } = plantedLogistic(50, 2, 2, 9, 1.5);
  const design = standardize(X);
  const lambda = 0.08;
  const fit = fitBinary(design, y, lambda, { tol: 1e-10 });
  // Coarse grid, then successively finer grids around the best point, over (b, β1, β2).
  let best = { F: Infinity, point: [0, 0, 0] };
  let width = 4;
  let center = [0, 0, 0];
  for (let level = 0; level < 14; level++) {
    for (let a = -6; a <= 6; a++)
      for (let b = -6; b <= 6; b++)
        for (let c = -6; c <= 6; c++) {
          const point = [
            center[0] + (a * width) / 6,
            center[1] + (b * width) / 6,
            center[2] + (c * width) / 6,
          ];
          const coef = Float64Array.of(point[1], point[2]);
          const F = objective(linearPredictor(design, coef, point[0]), y, coef, lambda);
          if (F < best.F) best = { F, point };
        }
    center = best.point;
    width /= 3;
  }
  t.ok(Math.abs(fit.objective - best.F) < 1e-9, `objective ${fit.objective} vs grid ${best.F}`);
  t.ok(fit.objective <= best.F + 1e-12, 'no grid point is lower');
  t.ok(
    Math.abs(fit.coef[0] - best.point[1]) < 1e-4 && Math.abs(fit.coef[1] - best.point[2]) < 1e-4,
    'coefficients',
  );
  t.end();
});

t.test('recovers a planted sparse support', (t) => {
  const { X, y, support } = plantedLogistic(400, 300, 5, 21, 2.5);
  const design = standardize(X);
  const fit = fitToSupportSize(design, y, 5);
  const found = Array.from(fit.coef.keys()).filter((j) => fit.coef[j] !== 0);
  t.same(
    found.sort((a, b) => a - b),
    [...support].sort((a, b) => a - b),
    'the 5 planted features, no others',
  );
  t.end();
});

t.test('a support search under an unspent budget finds the same model as one without', (t) => {
  const { X, y } = plantedLogistic(200, 150, 4, 22, 2);
  const design = standardize(X, new Set(), 'shared');
  for (const target of [1, 3, 6]) {
    const free = fitToSupportSize(design, y, target);
    const budget = new WorkBudget(1e6);
    const counted = fitToSupportSize(design, y, target, { budget });
    t.same(Array.from(counted.coef), Array.from(free.coef), `target ${target}: same coefficients`);
    t.equal(counted.lambda, free.lambda, `target ${target}: same λ`);
    t.ok(budget.used > 0 && !budget.exhausted, `target ${target}: ${budget.used} Newton steps counted`);
  }
  t.end();
});

t.test('a path is warm-started, monotone in support at the top and exact at every λ', (t) => {
  const { X, y } = plantedLogistic(100, 150, 4, 13);
  const design = standardize(X);
  const lambdas = lambdaGrid(lambdaMax(design, y), 25, 0.05);
  const path = fitPath(design, y, lambdas, { tol: 1e-8 });
  t.equal(path.length, 25);
  t.equal(supportSize(path[0].coef), 0, 'empty at λ_max');
  for (const fit of path) {
    t.ok(
      fit.converged && kkt(X, y, fit.lambda, fit.coef, fit.intercept) <= 1e-8,
      `KKT at λ=${fit.lambda.toFixed(4)}`,
    );
    const cold = fitBinary(design, y, fit.lambda, { tol: 1e-10 });
    t.ok(Math.abs(cold.objective - fit.objective) < 1e-9, 'same objective as a cold start');
  }
  t.end();
});

t.test('sklearn-shaped estimator: coef_ on the original scale reproduces the standardised model', (t) => {
  const { X, y } = plantedLogistic(120, 20, 3, 4);
  const scaled = X.map((row) => row.map((v, j) => 3 * v + j));
  const model = new SparseLogisticRegression({ lambda: 0.02 }).fit(scaled, y);
  t.ok(model.converged_ && model.nIter_ > 0 && Number.isFinite(model.objective_));
  const direct = fitBinary(standardize(X), y, 0.02);
  t.ok(
    Math.abs(model.objective_ - direct.objective) < 1e-9,
    'affine feature changes leave the problem unchanged',
  );
  const p = model.predictProba(scaled);
  t.ok(p.every((v) => v > 0 && v < 1));
  t.end();
});

t.test('stratified folds and the one-standard-error rule', async (t) => {
  const labels = Array.from({ length: 30 }, (_, i) => Math.floor(i / 3));
  const folds = stratifiedFolds(labels, 3, 5);
  for (let k = 0; k < 10; k++) {
    const of = labels.flatMap((c, i) => (c === k ? [folds[i]] : [])).sort();
    t.same(of, [0, 1, 2], `class ${k} has one sample in each fold`);
  }
  const { rows, labels: classes } = plantedEmotions(8, 4, 120, 2, 3, 3);
  const cv = crossValidate(rows, classes, 8, 4, { nLambda: 15 });
  const tMin = cv.lambdas.indexOf(cv.lambdaMin);
  const t1se = cv.lambdas.indexOf(cv.lambda1se);
  t.ok(t1se <= tMin, 'λ_1se ≥ λ_min');
  t.ok(cv.cvm[t1se] <= cv.cvm[tMin] + cv.cvsd[tMin], 'within one SE of the minimum');
  for (let s = 0; s < t1se; s++) t.ok(cv.cvm[s] > cv.cvm[tMin] + cv.cvsd[tMin], 'and the largest such λ');
  t.ok(cv.accuracy > 0.8, `held-out accuracy ${cv.accuracy}`);
});

t.test('one-vs-rest on planted emotions finds each class’s own neurons', async (t) => {
  const { rows, labels, owned } = plantedEmotions(12, 3, 256, 2, 17, 4);
  const fit = fitOneVsRest(rows, labels, 12, { kind: 'support', size: 2 });
  t.equal(fit.accuracy, 1);
  fit.fits.forEach((f, k) => {
    const positive = Array.from(f.coef.keys()).filter((j) => f.coef[j] > 0);
    t.ok(
      positive.some((j) => owned[k].includes(j)),
      `class ${k} holds a planted neuron`,
    );
    t.ok(supportSize(f.coef) <= 2);
  });
  const masked = fitOneVsRest(
    rows,
    labels,
    12,
    { kind: 'lambda', lambda: 0.05 },
    { exclude: new Set(owned[0]) },
  );
  for (const j of owned[0]) t.equal(masked.fits[0].coef[j], 0, `excluded neuron ${j} never enters`);
});

t.test('NMF (HALS) recovers an exact non-negative factorisation and never increases f', (t) => {
  const random = mulberry32(8);
  const W0 = Array.from({ length: 30 }, () =>
    Array.from({ length: 3 }, () => (random() < 0.5 ? 0 : random())),
  );
  const H0 = Array.from({ length: 3 }, () =>
    Array.from({ length: 20 }, () => (random() < 0.5 ? 0 : random())),
  );
  const X = W0.map((w) => H0[0].map((_, j) => w.reduce((s, v, r) => s + v * H0[r][j], 0)));
  const normX = X.flat().reduce((s, v) => s + v * v, 0);
  const model = new NMF({ components: 3, maxIter: 5000, tol: 1e-12 });
  const W = model.fitTransform(X);
  t.ok(model.objective_ < 1e-6 * normX, `relative error ${model.objective_ / normX}`);
  t.ok(W.every((row) => row.every((v) => v >= 0)) && model.components_.every((h) => h.every((v) => v >= 0)));
  const again = new NMF({ components: 3, maxIter: 5000, tol: 1e-12 }).fitTransform(X);
  t.same(Array.from(again[0]), Array.from(W[0]), 'deterministic');
  let previous = Infinity;
  for (const iterations of [1, 2, 5, 20, 100]) {
    const f = new NMF({ components: 2, maxIter: iterations, tol: 0 });
    f.fitTransform(X);
    t.ok(f.objective_ <= previous + 1e-12, `f after ${iterations} steps does not increase`);
    previous = f.objective_;
  }
  t.end();
});

t.test('the atlas of a composition: non-negative loadings, factor tops, a deterministic layout', (t) => {
  const random = mulberry32(4);
  const names = Array.from({ length: 30 }, (_, i) => `emotion${i}`);
  const concepts = Object.fromEntries(
    names.map((name, i) => [
      name,
      {
        neurons: [
          { neuron: i % 6, weight: 1 + random() },
          { neuron: 10 + (i % 4), weight: -0.5 - random() },
        ],
        lambda: 0.1,
        objective: 0.3,
        iterations: 3,
        converged: true,
      },
    ]),
  );
  const composition = {
    fitId: 'x',
    model: 'one-vs-rest' as const,
    scaling: 'per-neuron' as const,
    lambda: 0.1,
    accuracy: 1,
    samples: 90,
    features: 64,
    excluded: 0,
    concepts,
  };
  const label = (id: number) => (id === 0 ? 'zero' : undefined);
  const first = buildAtlas(composition, 2, label);
  const second = buildAtlas(composition, 2, label);
  t.same(second, first, 'the same atlas twice (seeded NMF and UMAP)');
  t.equal(first.emotions.length, 30);
  t.ok(first.emotions.every((e) => e.loadings.length === 2 && e.loadings.every((v) => v >= 0)));
  t.ok(first.factorTops.every((f) => f.neurons.every((n) => n.sign === 1 || n.sign === -1)));
  t.ok(new Set(first.emotions.map((e) => `${e.x},${e.y}`)).size > 1, 'a spread-out layout');
  t.equal(buildAtlas(composition, 7, label).factorTops.length, 7);
  t.end();
});

t.test('one-vs-rest support search stops at its work budget with the largest support reached', (t) => {
  const { rows, labels } = plantedEmotions(30, 3, 256, 2, 29, 6);
  const budget = new WorkBudget(300);
  const fit = fitOneVsRest(rows, labels, 30, { kind: 'support', size: 60 }, { budget });
  t.ok(budget.exhausted, `${budget.used} Newton steps of 300 spent`);
  const again = fitOneVsRest(
    rows,
    labels,
    30,
    { kind: 'support', size: 60 },
    { budget: new WorkBudget(300) },
  );
  t.same(
    again.fits.map((f) => Array.from(f.coef)),
    fit.fits.map((f) => Array.from(f.coef)),
    'the same budget gives the same models, bit for bit',
  );
  t.equal(fit.fits.length, 30, 'every class has a fit');
  const sizes = fit.fits.map((f) => supportSize(f.coef));
  t.ok(
    sizes.every((size) => size <= 60),
    `supports ${Math.min(...sizes)}–${Math.max(...sizes)}, none above the target`,
  );
  t.ok(
    sizes.some((size) => size < 60),
    'the budget cut some searches short',
  );
  t.ok(
    sizes.every((size) => size >= 1),
    'each class got its share of the budget: none is left empty',
  );
  t.end();
});

t.test('shared scaling: centred columns, one scale for all, relative sizes kept', (t) => {
  // Column j of the rows has spread ~ (j + 1); column 3 is excluded, column 4 is constant.
  const rows = Array.from({ length: 12 }, (_, i) =>
    Float64Array.from({ length: 5 }, (_, j) => (j === 4 ? 7 : Math.sin(i * 1.3 + j) * (j + 1) + j)),
  );
  const exclude = new Set([3]);
  const perNeuron = standardize(rows, exclude, 'per-neuron');
  const shared = standardize(rows, exclude, 'shared');
  const column = (design: typeof shared, j: number) => Array.from(design.X.subarray(j * 12, (j + 1) * 12));
  const rms = (values: number[]) => Math.sqrt(values.reduce((s, v) => s + v * v, 0) / values.length);
  for (const j of [0, 1, 2]) {
    t.ok(Math.abs(column(shared, j).reduce((s, v) => s + v, 0)) < 1e-9, `column ${j} centred`);
    t.ok(Math.abs(rms(column(perNeuron, j)) - 1) < 1e-9, `per-neuron: column ${j} has unit variance`);
    // Shared: column j / column 0 keeps the ratio of the raw spreads.
    const ratio = rms(column(shared, j)) / rms(column(shared, 0));
    const raw = perNeuron.scale[j] / perNeuron.scale[0];
    t.ok(Math.abs(ratio - raw) < 1e-9, `shared: column ${j} keeps its spread relative to column 0`);
  }
  // The RMS over every column that is not excluded (the constant one counts, with variance 0).
  const used = [0, 1, 2, 4].map((j) => rms(column(shared, j)));
  t.ok(Math.abs(rms(used) - 1) < 1e-9, 'shared: unit mean variance over the columns not excluded');
  t.same(new Set([shared.scale[0], shared.scale[1], shared.scale[2]]).size, 1, 'one scale for all');
  t.same(column(shared, 3), new Array(12).fill(0), 'excluded column is zero');
  t.same(column(shared, 4), new Array(12).fill(0), 'constant column is zero');
  t.end();
});
