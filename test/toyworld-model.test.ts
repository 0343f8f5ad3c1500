/**
 * The committed default model (models/toyworld) on held-out renders of its world, through the
 * exported ONNX graphs and onnxruntime-node (what the service runs), not PyTorch.
 *
 * `tools/toyworld/heldout.py` (PIL only) draws the held-out images at model size and lists the
 * zero-shot tasks; prompts are tokenized with the service's tokenizer (and must match the ids of the
 * project's Python BPE encoder, which the model was trained with). Every vocabulary word is also drawn
 * by the service's own rasteriser (src/clip/raster.ts). Asserted: the directory validates,
 * zero-shot accuracy per family, multimodal directions x·(W·t_c), the single top neuron of W·t_c,
 * the typographic attack rate, and that words drawn in the service rasteriser's layout read as well as
 * training-style renders. The thresholds are the where the model reaches them (zero-shot,
 * directions), otherwise the measured figure minus a margin (see models/toyworld/README.md).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { loadModelDirectory } from '../src/clip/model-directory.js';
import { rasterizeText } from '../src/clip/raster.js';
import { ClipTokenizer } from '../src/clip/tokenizer.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const modelDir = path.join(repo, 'models', 'toyworld');
const PYTHON = '/usr/bin/python3';
const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];

/**
 * Acceptance figures asserted on the committed model: the thresholds where the model reaches
 * them (zero-shot, directions), otherwise the measured figure minus a margin (models/toyworld/README.md has the
 * measured values and what limits them).
 */
const MIN_ZERO_SHOT: Record<string, number> = {
  colours: 0.95,
  shapes: 0.95,
  expressions: 0.95,
  reading: 0.95,
};
/** The target: 7 colours / 4 expressions. Measured: 8 / 5. */
const MIN_DIRECTION_PASS = { colour: 7, expression: 4 };
/** The same test with the spatial mean x scaled to unit length. Measured: 8 / 5. */
const MIN_DIRECTION_NORMED_PASS = { colour: 7, expression: 4 };
/**
 * Stretch target (4 colours / 2 expressions), not reached. Measured: 1 / 0 with the neurons on a
 * common scale (tools/toyworld/gauge.py; 0 / 1 before it, the expression being a barely active
 * neuron with a long row of W that topped every colour word too).
 */
const MIN_TOP_NEURON_PASS = { colour: 1, expression: 0 };
/** Typographic attack: share of colour-A shapes labelled with colour word B read as B. Measured: 21.4%. */
const MIN_ATTACK_RATE = 0.1;
/** Service-rasteriser words may read at most this much worse than training-style renders. */
const RASTER_MARGIN = 0.03;

interface Item {
  file: string;
  set: string;
  label: string;
  word?: string;
}
interface Task {
  sets: string[];
  classes: string[];
  templates: string[];
}
interface Heldout {
  tasks: Record<string, Task>;
  directions: Record<string, { classes: string[]; picture_set: string }>;
  prompts: Record<string, number[] | null>;
  items: Item[];
}

function l2normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s) || 1;
  return v.map((x) => x / n);
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function meanStd(values: number[]): { mean: number; std: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) + 1e-9 };
}

t.test('models/toyworld on held-out renders of its world', async (t) => {
  const directory = await loadModelDirectory(modelDir); // the service's own validation (hashes, schema)
  const { manifest } = directory;
  const S = manifest.image_size;
  const C = manifest.neuron_count;
  const D = manifest.embed_dim;
  const [gh, gw] = manifest.neuron_grid;
  t.ok(manifest.vocab_size < 49408, 'own, small vocabulary');

  const tmp = await mkdtemp(path.join(os.tmpdir(), 'toyworld-heldout-'));
  t.teardown(() => rm(tmp, { recursive: true, force: true }));
  const merges = path.join(modelDir, manifest.tokenizer.merges);
  const gen = spawnSync(
    PYTHON,
    [path.join(repo, 'tools/toyworld/heldout.py'), '--seed', '7', '--out', tmp, '--merges', merges],
    { encoding: 'utf8' },
  );
  t.equal(gen.status, 0, `heldout.py ran (${gen.stderr.trim().split('\n').pop() ?? ''})`);
  const heldout = JSON.parse(await readFile(path.join(tmp, 'heldout.json'), 'utf8')) as Heldout;

  // Prompts: the service's tokenizer must give the ids the model was trained with.
  const tokenizer = await ClipTokenizer.fromMergesFile(merges, {
    vocabSize: manifest.vocab_size,
    contextLength: manifest.context_length,
  });
  const promptTexts = Object.keys(heldout.prompts).sort();
  const mismatches = promptTexts.filter(
    (text) => JSON.stringify(tokenizer.encode(text).ids) !== JSON.stringify(heldout.prompts[text]),
  );
  t.same(mismatches, [], 'TypeScript tokenizer ids equal the Python BPE encoder ids for every prompt');

  const [textSession, trunkSession, headSession] = await Promise.all(
    ['text.onnx', 'visual_trunk.onnx', 'visual_head.onnx'].map((file) =>
      ort.InferenceSession.create(path.join(modelDir, file), { intraOpNumThreads: 2 }),
    ),
  );

  // Text embeddings of every prompt.
  const textOf = new Map<string, Float32Array>();
  for (let start = 0; start < promptTexts.length; start += 256) {
    const rows = promptTexts.slice(start, start + 256).map((text) => tokenizer.encode(text).ids);
    const L = Math.max(...rows.map((r) => r.length));
    const ids = new BigInt64Array(rows.length * L);
    rows.forEach((row, r) => row.forEach((id, i) => (ids[r * L + i] = BigInt(id))));
    const out = await textSession.run({ input_ids: new ort.Tensor('int64', ids, [rows.length, L]) });
    const data = out.text_embeds.data as Float32Array;
    rows.forEach((_, r) => textOf.set(promptTexts[start + r], data.slice(r * D, (r + 1) * D)));
  }

  // Images: the held-out PNGs, plus every vocabulary word drawn by the service's own rasteriser
  // (src/clip/raster.ts, what /v1/raster returns); decode, normalise, trunk -> neurons, head -> embeddings.
  const serviceTask = heldout.tasks.reading_all_service_raster;
  heldout.tasks.reading_all_service_ts = { ...serviceTask, sets: ['service_word_ts'] };
  const items: Item[] = [
    ...heldout.items,
    ...serviceTask.classes.map((word) => ({ file: '', set: 'service_word_ts', label: word })),
  ];
  const rgbOf = async (item: Item): Promise<Uint8Array> =>
    item.set === 'service_word_ts'
      ? rasterizeText(item.label, S).data
      : sharp(await readFile(path.join(tmp, item.file)))
          .removeAlpha()
          .raw()
          .toBuffer();
  const embeds: Float32Array[] = [];
  const means: Float32Array[] = [];
  const plane = S * S;
  for (let start = 0; start < items.length; start += 128) {
    const batch = items.slice(start, start + 128);
    const pixels = new Float32Array(batch.length * 3 * plane);
    await Promise.all(
      batch.map(async (item, b) => {
        const raw = await rgbOf(item);
        for (let p = 0; p < plane; p++) {
          for (let c = 0; c < 3; c++) {
            pixels[b * 3 * plane + c * plane + p] = (raw[p * 3 + c] / 255 - MEAN[c]) / STD[c];
          }
        }
      }),
    );
    const trunk = await trunkSession.run({
      pixel_values: new ort.Tensor('float32', pixels, [batch.length, 3, S, S]),
    });
    const neurons = trunk.neurons.data as Float32Array;
    const head = await headSession.run({
      neurons: new ort.Tensor('float32', neurons, [batch.length, C, gh, gw]),
    });
    const image = head.image_embeds.data as Float32Array;
    const cells = gh * gw;
    for (let b = 0; b < batch.length; b++) {
      embeds.push(l2normalize(image.slice(b * D, (b + 1) * D)));
      const m = new Float32Array(C);
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let k = 0; k < cells; k++) s += neurons[b * C * cells + c * cells + k];
        m[c] = s / cells;
      }
      means.push(m);
    }
  }
  const bySet = new Map<string, number[]>();
  items.forEach((item, i) => bySet.set(item.set, [...(bySet.get(item.set) ?? []), i]));

  // Zero-shot: prompt ensemble per class, argmax cosine.
  const accuracy: Record<string, number> = {};
  let attackWritten = 0;
  let attackTotal = 0;
  for (const [name, task] of Object.entries(heldout.tasks)) {
    const classEmb = task.classes.map((c) => {
      const sum = new Float32Array(D);
      for (const tmpl of task.templates) {
        const e = l2normalize(textOf.get(tmpl.replace('{}', c))!);
        for (let d = 0; d < D; d++) sum[d] += e[d] / task.templates.length;
      }
      return l2normalize(sum);
    });
    const idx = task.sets.flatMap((s) => bySet.get(s) ?? []);
    let correct = 0;
    for (const i of idx) {
      let best = 0;
      for (let k = 1; k < classEmb.length; k++) {
        if (dot(embeds[i], classEmb[k]) > dot(embeds[i], classEmb[best])) best = k;
      }
      const predicted = task.classes[best];
      if (name === 'attack') {
        if (predicted === items[i].word) attackWritten++;
        attackTotal++;
      } else if (predicted === items[i].label) correct++;
    }
    if (name !== 'attack') accuracy[name] = correct / idx.length;
  }
  t.comment(`zero-shot ${JSON.stringify(accuracy)}`);
  for (const [family, min] of Object.entries(MIN_ZERO_SHOT)) {
    t.ok(accuracy[family] >= min, `zero-shot ${family}: ${accuracy[family].toFixed(3)} >= ${min}`);
  }
  const training = accuracy.reading_all_training_fonts;
  for (const task of ['reading_all_service_raster', 'reading_all_service_ts']) {
    const service = accuracy[task];
    t.ok(
      service >= training - RASTER_MARGIN,
      `${task}: words in the service's layout read as well as training renders (${service.toFixed(3)} vs ${training.toFixed(3)})`,
    );
  }
  const attackRate = attackWritten / attackTotal;
  t.ok(
    attackRate >= MIN_ATTACK_RATE,
    `typographic attack rate ${attackRate.toFixed(3)} >= ${MIN_ATTACK_RATE}`,
  );

  // Multimodal directions: x·(W·t_c) and the single top neuron of W·t_c.
  const W = directory.bilinear; // [C, D] row-major
  const unitMeans = means.map(l2normalize);
  const words = bySet.get('word') ?? [];
  for (const [family, spec] of Object.entries(heldout.directions)) {
    const pictures = bySet.get(spec.picture_set) ?? [];
    const familyWords = words.filter((i) => spec.classes.includes(items[i].label));
    let directionPass = 0;
    let topPass = 0;
    let normedPass = 0;
    const details: string[] = [];
    for (const concept of spec.classes) {
      const tc = textOf.get(concept)!;
      const v = new Float32Array(C);
      let top = 0;
      for (let c = 0; c < C; c++) {
        v[c] = dot(W.subarray(c * D, (c + 1) * D), tc);
        if (v[c] > v[top]) top = c;
      }
      /** z of the concept's own images against the other concepts' images of the same kind. */
      const z = (score: (i: number) => number, set: number[]) => {
        const neg = meanStd(set.filter((i) => items[i].label !== concept).map(score));
        const own = set.filter((i) => items[i].label === concept).map(score);
        return (own.reduce((a, b) => a + b, 0) / own.length - neg.mean) / neg.std;
      };
      const direction = (i: number) => dot(means[i], v);
      const topNeuron = (i: number) => means[i][top];
      const directionNormed = (i: number) => dot(unitMeans[i], v);
      const [dp, dw] = [z(direction, pictures), z(direction, familyWords)];
      const [tp, tw] = [z(topNeuron, pictures), z(topNeuron, familyWords)];
      const [np, nw] = [z(directionNormed, pictures), z(directionNormed, familyWords)];
      const topNormed = (i: number) => unitMeans[i][top];
      const zTopNormed = [z(topNormed, pictures), z(topNormed, familyWords)].map((x) => x.toFixed(1));
      if (dp >= 2 && dw >= 2) directionPass++;
      if (tp >= 2 && tw >= 2) topPass++;
      if (np >= 2 && nw >= 2) normedPass++;
      details.push(
        `${concept}: z ${dp.toFixed(1)}/${dw.toFixed(1)} (x/|x| ${np.toFixed(1)}/${nw.toFixed(1)}), ` +
          `neuron ${top} ${tp.toFixed(1)}/${tw.toFixed(1)} (x/|x| ${zTopNormed.join('/')})`,
      );
    }
    t.comment(`${family}: ${details.join('; ')}`);
    const key = family as keyof typeof MIN_DIRECTION_PASS;
    t.ok(
      directionPass >= MIN_DIRECTION_PASS[key],
      `${family}: ${directionPass}/${spec.classes.length} concepts' W·t_c directions pass (>= ${MIN_DIRECTION_PASS[key]})`,
    );
    t.ok(
      normedPass >= MIN_DIRECTION_NORMED_PASS[key],
      `${family}: ${normedPass}/${spec.classes.length} directions pass with x at unit length (>= ${MIN_DIRECTION_NORMED_PASS[key]})`,
    );
    t.ok(
      topPass >= MIN_TOP_NEURON_PASS[key],
      `${family}: ${topPass}/${spec.classes.length} single top neurons pass (>= ${MIN_TOP_NEURON_PASS[key]})`,
    );
  }

  // The catalogue labels every neuron.
  const catalogue = JSON.parse(await readFile(path.join(modelDir, 'neurons.json'), 'utf8')) as Record<
    string,
    { label: string; family: string; score: number; source: string }
  >;
  t.equal(Object.keys(catalogue).length, C, 'neurons.json labels every neuron');
  const vocabulary = (await readFile(path.join(modelDir, 'words.txt'), 'utf8')).trim().split('\n');
  for (const phrase of ['red', 'yellow', 'happy', 'star', 'lemon', 'red circle', 'happy face']) {
    t.ok(vocabulary.includes(phrase), `words.txt holds "${phrase}"`);
  }
  await Promise.all([textSession.release(), trunkSession.release(), headSession.release()]);
});
