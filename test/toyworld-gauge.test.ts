/**
 * tools/toyworld/gauge.py puts a model's neurons on a common scale without changing what it
 * computes: on a copy of the reference model (random weights, learned attention), with random
 * scales s, every image embedding stays as it was, the neurons come out divided by s, W's rows come
 * out multiplied by s, and so each image's per-neuron contributions x_i·(W·t)_i stay as they were.
 * Bad scales are refused with a message.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { attribution, contributions } from '../src/attribution/bilinear.js';
import { ClipModel } from '../src/clip/clip-model.js';
import { loadConfig } from '../src/config.js';
import { referenceModelDir } from './helpers/app.js';
import { repoRoot, runPython } from './helpers/tiny-model.js';

const GAUGE = path.join(repoRoot, 'tools/toyworld/gauge.py');
const options = { ...loadConfig({}), executionProviders: ['cpu' as const], intraOpThreads: 1 };

/** Largest |a - b| / (largest |a|) over two arrays. */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  let error = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(a[i]));
    error = Math.max(error, Math.abs(a[i] - b[i]));
  }
  return error / (scale || 1);
}

t.test('gauge.py rescales the neurons and W, and nothing the model computes', async (t) => {
  const original = await referenceModelDir();
  const work = await mkdtemp(path.join(tmpdir(), 'gauge-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const gauged = path.join(work, 'model');
  await cp(original, gauged, { recursive: true });

  const before = await ClipModel.load(original, options);
  t.teardown(() => before.release());
  const C = before.neuronCount;
  const D = before.embedDim;
  let seed = 7;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const scales = Array.from({ length: C }, () => 0.2 + 5 * random());
  const scalesFile = path.join(work, 'scales.json');
  await writeFile(scalesFile, JSON.stringify(scales));

  const run = await runPython([GAUGE, gauged, '--scales', scalesFile]);
  t.equal(run.code, 0, run.stderr);
  // A result written from the finished model names the model's hash: hashing it would be a cycle.
  await writeFile(path.join(gauged, 'default-composition.json'), '{"model":"…"}');
  t.equal(
    (await runPython(['-m', 'tools.toyworld.finalize', gauged])).code,
    0,
    'the manifest’s hashes are renewed',
  );
  const { files } = JSON.parse(await readFile(path.join(gauged, 'clip.json'), 'utf8')) as {
    files: Record<string, string>;
  };
  t.ok(files['text.onnx'] && files['bilinear.f32'], 'the model’s files are hashed');
  t.notOk('default-composition.json' in files, 'a result of the finished model is not');
  const after = await ClipModel.load(gauged, options);
  t.teardown(() => after.release());

  const S = before.imageSize;
  const pixels = Array.from({ length: 3 }, () =>
    Float32Array.from({ length: 3 * S * S }, () => 4 * random() - 2),
  );
  const [x, y] = [
    await before.encodeImages(pixels.map((p) => p.slice())),
    await after.encodeImages(pixels.map((p) => p.slice())),
  ];
  const [text] = await before.embedTexts(['a photo of a dog']);
  const [a, b] = [attribution(before.bilinear, text, 'unit'), attribution(after.bilinear, text, 'unit')];
  for (let k = 0; k < pixels.length; k++) {
    t.ok(relativeError(x[k].embedding, y[k].embedding) < 1e-5, `image ${k}: the same embedding`);
    const unscaled = y[k].neuronMeans.map((value, i) => value * scales[i]);
    t.ok(relativeError(x[k].neuronMeans, unscaled) < 1e-5, `image ${k}: neurons divided by s`);
    t.ok(
      relativeError(contributions(x[k].neuronMeans, a), contributions(y[k].neuronMeans, b)) < 1e-5,
      `image ${k}: the same per-neuron contributions x_i·(W·t)_i`,
    );
  }
  const expectedW = before.bilinear.map((value, j) => value * scales[Math.floor(j / D)]);
  t.ok(relativeError(expectedW, after.bilinear) < 1e-6, 'W’s rows multiplied by s');

  for (const [bad, message] of [
    [scales.slice(1), /scales for/],
    [scales.map((s, i) => (i === 3 ? -s : s)), /positive/],
  ] as const) {
    await writeFile(scalesFile, JSON.stringify(bad));
    const refused = await runPython([GAUGE, gauged, '--scales', scalesFile]);
    t.not(refused.code, 0);
    t.match(refused.stderr, message);
  }
});
