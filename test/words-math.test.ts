/**
 * The math of the word index without a model: vocabulary, masked cosine and top-k, the expression
 * parser, 3CosAdd/3CosMul, and lexical detection on a constructed case with planted neurons.
 */
import t from 'tap';
import type { HttpError } from '../src/errors.js';
import { combineCosines, COSMUL_EPSILON, parseExpression } from '../src/words/arithmetic.js';
import {
  detectLexicalNeurons,
  lexicalNeurons,
  spellingFeatures,
  spellingColumns,
} from '../src/words/lexical.js';
import { choleskySolveInPlace, dualRidgeR2, primalRidgeR2 } from '../src/words/ridge.js';
import {
  defaultWords,
  geographicWords,
  isIndexableWord,
  makeVocabulary,
  parseWordList,
} from '../src/words/vocabulary.js';
import { JsProduct, OrtProduct } from '../src/words/matrix-product.js';
import { formatDuration, ProgressPrinter, progressLine } from '../src/words/progress.js';
import type { BuildProgress } from '../src/words/index-builder.js';
import { topK, WordIndex } from '../src/words/word-index.js';

/** A small deterministic generator (LCG) and standard normals from it. */
function random(seed: number) {
  let state = seed;
  const uniform = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state + 0.5) / 2 ** 32;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

t.test('default vocabulary: frequent words, filtered, plus geography', async (t) => {
  const words = await defaultWords(2000);
  t.ok(words.length >= 2000 && words.length < 2000 + geographicWords().length + 1);
  t.equal(new Set(words).size, words.length, 'no duplicates');
  t.ok(words.includes('a') && words.includes('I'));
  for (const junk of ['s', 't', 'm', 're', 'll', 've']) t.notOk(words.includes(junk), `skips "${junk}"`);
  for (const place of ['France', 'Paris', 'French', 'Japan', 'Tokyo', 'Japanese yen'])
    t.ok(words.includes(place), place);
  t.notOk(isIndexableWord('x'));
  const vocabulary = makeVocabulary(['dog', 'France', 'dog', ' Paris '], 'custom');
  t.same(vocabulary.words, ['dog', 'France', 'Paris']);
  t.same(Array.from(vocabulary.geographic), [0, 1, 1]);
  t.same(parseWordList('# comment\nred circle\n\nblue\r\nred circle\n'), ['red circle', 'blue']);
});

t.test('masked cosine equals the cosine of the masked vectors; top-k is exact', async (t) => {
  const { normal } = random(3);
  const V = 300;
  const C = 37;
  const words = Array.from({ length: V }, (_, i) => `w${i}`);
  const raw = Float32Array.from({ length: V * C }, normal);
  const index = WordIndex.fromActivations(words, Float32Array.from(raw), C);
  const query = Float32Array.from({ length: C }, normal);
  const mask = [0, 5, 36];
  const [cosines] = await index.cosines([query], mask);
  for (const i of [0, 17, 299]) {
    let dot = 0;
    let a = 0;
    let b = 0;
    for (let j = 0; j < C; j++) {
      if (mask.includes(j)) continue;
      const x = raw[i * C + j] - index.mean[j];
      dot += x * query[j];
      a += x * x;
      b += query[j] * query[j];
    }
    t.ok(Math.abs(cosines[i] - dot / Math.sqrt(a * b)) < 1e-5, `row ${i}`);
  }
  const expected = Array.from(cosines.keys())
    .sort((x, y) => cosines[y] - cosines[x] || x - y)
    .slice(0, 10);
  t.same(topK(cosines, 10), expected);
  const hits = await index.nearest(query, 5, { mask, exclude: [expected[0]] });
  t.same(
    hits.map((hit) => hit.index),
    expected.slice(1, 6),
  );
  let mean = 0;
  for (let i = 0; i < V; i++) mean += index.centred[i * C + 4];
  t.ok(Math.abs(mean / V) < 1e-5, 'rows are centred');
  const { top, bottom } = index.neuronWords(4, 3);
  t.ok(top[0].activation >= top[1].activation && bottom[0].activation <= bottom[1].activation);
  t.ok(Math.abs(top[0].activation - raw[(index.indexOf(top[0].word) as number) * C + 4]) < 1e-5);
});

t.test('onnxruntime MatMul gives the products of the JavaScript loop', async (t) => {
  const { normal } = random(5);
  const rows = 1000;
  const cols = 77;
  const m = Float32Array.from({ length: rows * cols }, normal);
  const queries = [0, 1, 2].map(() => Float32Array.from({ length: cols }, normal));
  const ort = await OrtProduct.create(m, rows, cols, 1);
  t.teardown(() => ort.release());
  const [fast, slow] = [await ort.multiply(queries), await new JsProduct(m, rows, cols).multiply(queries)];
  let worst = 0;
  for (let k = 0; k < 3; k++)
    for (let i = 0; i < rows; i++) worst = Math.max(worst, Math.abs(fast[k][i] - slow[k][i]));
  t.ok(worst < 1e-4, `max |difference| ${worst}`);
});

t.test('expressions: terms, phrases, quotes and errors', async (t) => {
  t.same(parseExpression('King - Man + Woman'), [
    { sign: 1, text: 'King' },
    { sign: -1, text: 'Man' },
    { sign: 1, text: 'Woman' },
  ]);
  t.same(parseExpression('"red circle" - red + blue'), [
    { sign: 1, text: 'red circle' },
    { sign: -1, text: 'red' },
    { sign: 1, text: 'blue' },
  ]);
  t.same(parseExpression('red circle -red+ blue'), [
    { sign: 1, text: 'red circle' },
    { sign: -1, text: 'red' },
    { sign: 1, text: 'blue' },
  ]);
  t.same(parseExpression('x-ray - bone'), [
    { sign: 1, text: 'x-ray' },
    { sign: -1, text: 'bone' },
  ]);
  t.same(parseExpression('-man + “happy  face”'), [
    { sign: -1, text: 'man' },
    { sign: 1, text: 'happy face' },
  ]);
  for (const bad of ['', '   ', 'king +', 'king + - man', '+', '"unclosed', '"" + a', 'a "b c"', '- man']) {
    let status: number | undefined;
    try {
      parseExpression(bad);
    } catch (error) {
      status = (error as HttpError).statusCode;
    }
    t.equal(status, 400, JSON.stringify(bad));
  }
});

t.test('3CosAdd and 3CosMul', async (t) => {
  const b = Float32Array.from([0.9, 0.1, -0.5]);
  const a = Float32Array.from([0.2, 0.8, -0.1]);
  const aStar = Float32Array.from([0.5, 0.4, 0.3]);
  const add = combineCosines([b, a, aStar], [1, -1, 1], 'add');
  const mul = combineCosines([b, a, aStar], [1, -1, 1], 'mul');
  const s = (x: number) => (x + 1) / 2;
  for (let i = 0; i < 3; i++) {
    t.ok(Math.abs(add[i] - (b[i] - a[i] + aStar[i])) < 1e-6);
    t.ok(Math.abs(mul[i] - (s(b[i]) * s(aStar[i])) / (s(a[i]) + COSMUL_EPSILON)) < 1e-5);
  }
});

t.test('Cholesky solve', async (t) => {
  const A = Float64Array.from([4, 2, 0, 2, 5, 1, 0, 1, 3]);
  const B = Float64Array.from([1, 0, 2, 1, 3, -1]); // [3, 2]
  const original = Float64Array.from(A);
  const X = Float64Array.from(B);
  choleskySolveInPlace(A, 3, X, 2);
  for (let i = 0; i < 3; i++) {
    for (let c = 0; c < 2; c++) {
      let sum = 0;
      for (let j = 0; j < 3; j++) sum += original[i * 3 + j] * X[j * 2 + c];
      t.ok(Math.abs(sum - B[i * 2 + c]) < 1e-9);
    }
  }
});

t.test('dual and primal ridge give the same cross-validated R²', async (t) => {
  const { uniform, normal } = random(9);
  const n = 120;
  const C = 7;
  const X = Array.from({ length: n }, (_, r) => spellingFeatures(`w${Math.floor(uniform() * 1e6)}x${r}`, 32));
  const Y = Float32Array.from({ length: n * C }, normal);
  const p = spellingColumns(32);
  const [primal, dual] = [await primalRidgeR2(X, p, Y, C), await dualRidgeR2(X, p, Y, C)];
  for (let c = 0; c < C; c++)
    t.ok(Math.abs(primal[c] - dual[c]) < 1e-8, `neuron ${c}: ${primal[c]} vs ${dual[c]}`);
  await t.rejects(
    dualRidgeR2(X, p, Y, C, { signal: AbortSignal.abort() }),
    'an aborted signal stops the fit',
  );
  await t.rejects(primalRidgeR2(X, p, Y, C, { signal: AbortSignal.abort() }));
});

t.test('lexical detection recovers planted spelling neurons, not meaning neurons', async (t) => {
  const { uniform, normal } = random(11);
  const n = 1200;
  const D = 16;
  const C = 30;
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const words = Array.from({ length: n }, () =>
    Array.from({ length: 3 + Math.floor(uniform() * 7) }, () => letters[Math.floor(uniform() * 26)]).join(''),
  );
  const embeddings = words.map(() => Float32Array.from({ length: D }, normal));
  const responses = new Float32Array(n * C);
  const spellingNeurons = [0, 1, 2, 3, 4];
  const meaningNeurons = [5, 6, 7, 8, 9];
  for (let r = 0; r < n; r++) {
    const word = words[r];
    for (let c = 0; c < C; c++) {
      let y = 0.3 * normal();
      if (spellingNeurons.includes(c)) {
        y += word.split(letters[c]).length - 1 + 0.3 * word.length + (word.endsWith(letters[c + 10]) ? 1 : 0);
      } else if (meaningNeurons.includes(c)) {
        y += 2 * embeddings[r][c - 5] + embeddings[r][(c + 3) % D];
      }
      responses[r * C + c] = y;
    }
  }
  const scores = await detectLexicalNeurons({ words, responses, columns: C, embeddings });
  t.same(lexicalNeurons(scores), spellingNeurons);
  for (const c of spellingNeurons)
    t.ok(scores.spelling[c] > 0.5, `spelling R² of ${c}: ${scores.spelling[c]}`);
  // The score is R²(spelling): meaning neurons are explained by their meaning, not their letters.
  for (const c of meaningNeurons)
    t.ok(scores.meaning[c] > 0.3 && scores.score[c] < 0.1, `neuron ${c}: ${scores.score[c]}`);
});

t.test('progress: a redrawn line on a terminal, plain lines otherwise', async (t) => {
  const progress = (done: number, phase: BuildProgress['phase'] = 'activations'): BuildProgress => ({
    phase,
    done,
    total: 1000,
    resumedFrom: 0,
    wordsPerSecond: 50,
    etaSeconds: (1000 - done) / 50,
    elapsedSeconds: done / 50,
  });
  t.equal(formatDuration(null), '--:--');
  t.equal(formatDuration(75), '01:15');
  t.equal(formatDuration(3725), '1:02:05');
  t.match(progressLine(progress(250)), /25\.0% 250\/1,000 50\.0 words\/s ETA 00:15$/);
  t.match(progressLine(progress(1000, 'lexical')), /100\.0% 1,000\/1,000 50\.0 words\/s lexical$/);

  let clock = 0;
  const tty: string[] = [];
  const onTerminal = new ProgressPrinter({ isTTY: true, write: (s) => tty.push(s) }, 200, () => clock);
  for (let done = 0; done <= 1000; done += 10) {
    onTerminal.update(progress(done));
    clock += 50; // an update every 50 ms: redrawn every 200 ms
  }
  onTerminal.update(progress(1000, 'lexical'));
  onTerminal.finish();
  t.ok(tty.length >= 20 && tty.length <= 30, `${tty.length} redraws`);
  t.ok(tty.slice(0, -1).every((s) => s.startsWith('\r') && s.endsWith('\x1b[K')));
  t.match(tty.at(-2) ?? '', /lexical/, 'a phase change is drawn at once');
  t.equal(tty.at(-1), '\n');

  const plain: string[] = [];
  const inLog = new ProgressPrinter({ isTTY: false, write: (s) => plain.push(s) });
  for (let done = 0; done <= 1000; done += 10) inLog.update(progress(done));
  inLog.update(progress(1000, 'done'));
  inLog.finish();
  t.equal(plain.length, 12, 'one line per tenth and one per phase');
  t.ok(plain.every((s) => s.endsWith('\n') && !s.includes('\r')));
});
