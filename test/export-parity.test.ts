/**
 * The exporter (tools/export/) against PyTorch: every ONNX output within 1e-4 relative error
 * (max|a - b| / max|b|), text features within 1e-5, and the same top-10 neurons of W·t, for text rows
 * at L = context (zero padded) and at their own shortest length; the shared reference checkpoint
 * against OpenAI's own outputs, with both forms of text.onnx (fused, the default, and naive, traced by
 * torch.onnx); and bad inputs, which must fail with one line and leave no OUT_DIR behind.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { loadModelDirectory } from '../src/clip/model-directory.js';
import {
  attribution,
  checkParity,
  exportCheckpoint,
  exportCheckpointCached,
  loadSessions,
  prepareTinyModel,
  referenceOutputs,
  relativeError,
  repoRoot,
  runPython,
  type RunResult,
  runTensor,
  runText,
  topK,
} from './helpers/tiny-model.js';

const TOLERANCE = 1e-4;
/** Text features, in both forms of the text graph (issue 23: the fused graph changes no number). */
const TEXT_TOLERANCE = 1e-5;
const SHARED = path.resolve(repoRoot, '../shared/clip/reference-small');

for (const torchscript of [false, true]) {
  const form = torchscript ? 'TorchScript float16 archive' : 'plain float32 state dict';
  t.test(`tiny model, ${form}: onnxruntime matches PyTorch`, async (t) => {
    const model = await prepareTinyModel({ seed: 1, torchscript });
    const directory = await loadModelDirectory(model.modelDir); // the service's own validation
    t.equal(directory.manifest.neuron_count, 512);
    t.same(directory.manifest.neuron_grid, [2, 2]);
    t.equal(directory.bilinear.length, 512 * 64);
    t.same(JSON.parse(await readFile(path.join(model.modelDir, 'neurons.json'), 'utf8')), {});
    const manifest = JSON.parse(await readFile(path.join(model.modelDir, 'clip.json'), 'utf8')) as {
      tensors: { text: { graph: string } };
    };
    t.equal(manifest.tensors.text.graph, 'fused', 'the fused text graph is the default');

    const sessions = await loadSessions(model.modelDir);
    const report = await checkParity(sessions, await referenceOutputs(model.checkpoint));
    t.comment(JSON.stringify(report));
    for (const [name, value] of Object.entries(report.relativeErrors)) {
      t.ok(value <= TOLERANCE, `${name}: relative error ${value.toExponential(2)} <= ${TOLERANCE}`);
    }
    for (const name of ['text_L_context', 'text_L_shortest'] as const) {
      const value = report.relativeErrors[name];
      t.ok(value <= TEXT_TOLERANCE, `${name}: relative error ${value.toExponential(2)} <= ${TEXT_TOLERANCE}`);
    }
    t.equal(report.top10Mismatches, 0, 'identical top-10 neuron sets at L = 77 and L = shortest');
  });
}

t.test('shared reference checkpoint: matches OpenAI model.py outputs', async (t) => {
  const modelDir = await exportCheckpointCached('reference-small', path.join(SHARED, 'checkpoint.pt'));
  const expected = JSON.parse(await readFile(path.join(SHARED, 'expected.json'), 'utf8')) as SharedExpected;
  const sessions = await loadSessions(modelDir);
  const rows = expected.prompts.map((p) => p.tokens);
  const want = expected.prompts.flatMap((p) => p.text_features);
  const wantAttribution = expected.prompts.flatMap((p) => p.attribution);
  for (const length of [undefined, 77]) {
    const text = await runText(sessions, rows, length);
    const label = length ? 'L = 77' : 'L = shortest';
    t.ok(
      relativeError(text, want) <= TEXT_TOLERANCE,
      `text_features, ${label}: ${relativeError(text, want)}`,
    );
    const a = attribution(sessions, text);
    t.ok(
      relativeError(a, wantAttribution) <= TOLERANCE,
      `attribution, ${label}: ${relativeError(a, wantAttribution)}`,
    );
    const C = sessions.neuronCount;
    const same = expected.prompts.filter((p, r) => {
      const got = topK(a.subarray(r * C, (r + 1) * C), 10).sort((x, y) => x - y);
      return got.join() === [...p.top10_ids].sort((x, y) => x - y).join();
    });
    t.equal(same.length, rows.length, `top-10 neuron sets, ${label}`);
  }

  const pixels = await Promise.all(expected.images.map((image) => loadPixels(path.join(SHARED, image.png))));
  const S = 64;
  const batch = new Float32Array(pixels.length * 3 * S * S);
  pixels.forEach((p, i) => batch.set(p, i * 3 * S * S));
  const neurons = await runTensor(sessions.trunk, 'pixel_values', batch, [pixels.length, 3, S, S]);
  const [C, h, w] = expected.layer4_full_image0.shape;
  const layer4 = expected.layer4_full_image0.values_CHW.flat(2);
  const image0 = neurons.subarray(0, C * h * w);
  t.equal(expected.layer4_full_image0.word, expected.images[0].word);
  t.ok(relativeError(image0, layer4) <= TOLERANCE, `layer4 of image 0: ${relativeError(image0, layer4)}`);
  const embeds = await runTensor(sessions.head, 'neurons', neurons, [pixels.length, C, h, w]);
  const wantEmbeds = expected.images.flatMap((image) => image.image_features);
  t.ok(
    relativeError(embeds, wantEmbeds) <= TOLERANCE,
    `image_features: ${relativeError(embeds, wantEmbeds)}`,
  );
});

t.test('shared reference checkpoint: the naive text graph gives the numbers of the fused one', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'export-naive-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const checkpoint = path.join(SHARED, 'checkpoint.pt');
  const naiveDir = path.join(dir, 'model');
  const exported = await exportCheckpoint(checkpoint, naiveDir, ['--text-graph', 'naive']);
  t.equal(exported.code, 0, exported.stderr);
  const fusedDir = await exportCheckpointCached('reference-small', checkpoint);
  const expected = JSON.parse(await readFile(path.join(SHARED, 'expected.json'), 'utf8')) as SharedExpected;
  const graphs: Record<string, ort.InferenceSession> = {};
  for (const [form, modelDir] of [
    ['naive', naiveDir],
    ['fused', fusedDir],
  ] as const) {
    const manifest = JSON.parse(await readFile(path.join(modelDir, 'clip.json'), 'utf8')) as {
      tensors: { text: { graph: string } };
    };
    t.equal(manifest.tensors.text.graph, form, `clip.json names the ${form} text graph`);
    graphs[form] = await ort.InferenceSession.create(path.join(modelDir, 'text.onnx'), {
      intraOpNumThreads: 1,
    });
  }
  // All prompts in one batch, zero-padded to the longest row (as the service pads a batch) and to 77.
  const rows = expected.prompts.map((p) => p.tokens);
  const want = expected.prompts.flatMap((p) => p.text_features);
  const longest = Math.max(...rows.map((row) => row.length));
  t.ok(
    rows.some((row) => row.length < longest),
    'rows of different lengths',
  );
  for (const length of [longest, 77]) {
    const ids = new BigInt64Array(rows.length * length);
    rows.forEach((row, r) => row.forEach((id, i) => (ids[r * length + i] = BigInt(id))));
    const feeds = { input_ids: new ort.Tensor('int64', ids, [rows.length, length]) };
    const out: Record<string, Float32Array> = {};
    for (const [form, session] of Object.entries(graphs)) {
      out[form] = (await session.run(feeds)).text_embeds.data as Float32Array;
      const error = relativeError(out[form], want);
      t.ok(
        error <= TEXT_TOLERANCE,
        `${form}, L = ${length}: relative error ${error.toExponential(2)} vs OpenAI's`,
      );
    }
    const between = relativeError(out.fused, out.naive);
    t.ok(between <= TEXT_TOLERANCE, `fused vs naive, L = ${length}: ${between.toExponential(2)}`);
  }
});

t.test('config inference for every released ResNet, and the RN50x4 neuron catalogue', async (t) => {
  const labels = path.resolve(repoRoot, '../shared/reference/rn50x4/neuron-hand-labels.json');
  const result = await runPython(['-c', INFER_RELEASED, labels]);
  t.equal(result.code, 0, result.stderr);
  const { inferred, article, merged } = JSON.parse(result.stdout) as {
    inferred: Record<string, boolean>;
    article: Record<string, { label: string; family?: string; source: string }>;
    merged: Record<string, { label: string; family?: string; source: string }>;
  };
  t.same(inferred, { RN50: true, RN101: true, RN50x4: true, RN50x16: true, RN50x64: true });
  // The article's data (test/article-data.test.ts checks all of it): every neuron has an entry.
  t.equal(Object.keys(article).length, 2560);
  t.equal(article['89'].label, 'Donald Trump');
  t.equal(article['89'].family, 'person');
  t.match(article['89'].source, ARTICLE);
  t.equal(article['672'].label, 'fires weakly for Hillary Clinton');
  t.equal(merged['1512'].label, 'Happy', '--labels set the label of an article entry');
  t.match(
    merged['1512'].source,
    /^neuron-hand-labels\.json \(label\); /,
    'and its source names the file first',
  );
  t.equal(merged['1512'].family, 'emotion', 'the entry keeps its other fields');
  t.equal(merged['89'].source, article['89'].source);
});

t.test('bad inputs fail with one line and leave no OUT_DIR', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'export-bad-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tiny = await prepareTinyModel({ seed: 1 });
  const checkpointBytes = await readFile(tiny.checkpoint);
  await writeFile(path.join(dir, 'truncated.pt'), checkpointBytes.subarray(0, checkpointBytes.length >> 1));
  await writeFile(path.join(dir, 'labels.json'), JSON.stringify({ 3: 'fine', 512: 'out of range' }));
  await writeFile(path.join(dir, 'short-merges.txt'), '#version: 0.2\ni n\nt h\n');
  const fakes = await runPython(['-c', FAKE_CHECKPOINTS, dir]);
  t.equal(fakes.code, 0, fakes.stderr);

  const cases: [string, string, string[], RegExp][] = [
    ['missing path', path.join(dir, 'nope.pt'), [], /no such file/],
    ['truncated file', path.join(dir, 'truncated.pt'), [], /truncated or corrupt/],
    ['non-CLIP state dict', path.join(dir, 'resnet.pt'), [], /not a CLIP ResNet state dict/],
    [
      'ViT CLIP',
      path.join(dir, 'vit.pt'),
      [],
      /ViT CLIP checkpoints are not supported yet; expected a CLIP ResNet/,
    ],
    ['merges too short', tiny.checkpoint, ['--vocab', path.join(dir, 'short-merges.txt')], /needs 48894/], // last --vocab wins
    ['label id out of range', tiny.checkpoint, ['--labels', path.join(dir, 'labels.json')], /out of range/],
  ];
  const outDir = (name: string) => path.join(dir, `out-${name.replace(/\W+/g, '-')}`);
  const results: RunResult[] = []; // two at a time: each is a Python process that imports torch
  for (let i = 0; i < cases.length; i += 2) {
    const pair = cases.slice(i, i + 2);
    results.push(
      ...(await Promise.all(pair.map(([name, file, extra]) => exportCheckpoint(file, outDir(name), extra)))),
    );
  }
  cases.forEach(([name, , , message], i) => {
    const stderr = results[i].stderr.trim();
    t.not(results[i].code, 0, `${name}: non-zero exit`);
    t.match(stderr, message, `${name}: ${stderr}`);
    t.equal(stderr.split('\n').length, 1, `${name}: one line`);
    t.notOk(existsSync(outDir(name)), `${name}: no OUT_DIR`);
  });

  const badGraph = await exportCheckpoint(tiny.checkpoint, outDir('bad graph'), ['--text-graph', 'fast']);
  t.equal(badGraph.code, 2, 'an unknown --text-graph is a usage error');
  t.match(badGraph.stderr, /--text-graph: invalid choice: 'fast' \(choose from 'fused', 'naive'\)/);
  t.notOk(existsSync(outDir('bad graph')), 'and writes nothing');

  const existing = path.join(dir, 'existing');
  await mkdir(existing);
  await writeFile(path.join(existing, 'keep.txt'), 'mine');
  const refused = await exportCheckpoint(tiny.checkpoint, existing);
  t.not(refused.code, 0, 'an existing OUT_DIR is refused');
  t.match(refused.stderr.trim(), /already exists; pass --force/);
  t.same(await readdir(existing), ['keep.txt'], 'and left untouched');
  const forced = await exportCheckpoint(tiny.checkpoint, existing, ['--force']);
  t.equal(forced.code, 0, forced.stderr);
  t.notOk(existsSync(path.join(existing, 'keep.txt')), '--force replaces it');
  t.ok(existsSync(path.join(existing, 'clip.json')));

  const leftovers = (await readdir(dir)).filter((f) => f.startsWith('.'));
  t.same(leftovers, [], 'no temporary folders left');
});

/** Preprocessing of an image already at S×S: /255, (x - mean) / std, channels first. */
async function loadPixels(file: string): Promise<Float32Array> {
  const { data, info } = await sharp(await readFile(file))
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const mean = [0.48145466, 0.4578275, 0.40821073];
  const std = [0.26862954, 0.26130258, 0.27577711];
  const plane = info.width * info.height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[c * plane + i] = (data[i * info.channels + c] / 255 - mean[c]) / std[c];
  }
  return out;
}

interface SharedExpected {
  prompts: { tokens: number[]; text_features: number[]; attribution: number[]; top10_ids: number[] }[];
  images: { word: string; png: string; image_features: number[] }[];
  layer4_full_image0: { word: string; shape: [number, number, number]; values_CHW: number[][][] };
}

const ARTICLE = 'Goh et al. 2021, Multimodal Neurons in Artificial Neural Networks';

/** argv: labels file. Builds every released config's shapes (initialisation skipped). */
const INFER_RELEASED = `
import json, sys
from torch import nn
for name in ("kaiming_uniform_", "uniform_", "normal_", "zeros_", "ones_", "xavier_uniform_", "constant_"):
    setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
from tools.export.clip_model import CLIP, RELEASED_CONFIGS
from tools.export.checkpoint import infer_config
from tools.export.neurons import build_catalogue
inferred = {n: infer_config(CLIP(c).state_dict(), n) == c for n, c in RELEASED_CONFIGS.items()}
rn50x4 = RELEASED_CONFIGS["RN50x4"]
print(json.dumps({"inferred": inferred, "article": build_catalogue(rn50x4),
                  "merged": build_catalogue(rn50x4, sys.argv[1])}))
`;

/** Writes resnet.pt (torchvision-like keys) and vit.pt (ViT CLIP keys) into argv[1]. */
const FAKE_CHECKPOINTS = `
import sys, torch
out = sys.argv[1]
torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(10, 512)}, out + "/resnet.pt")
vit = {"visual.class_embedding": torch.zeros(64), "visual.proj": torch.zeros(64, 32),
       "visual.transformer.resblocks.0.ln_1.weight": torch.zeros(64), "text_projection": torch.zeros(64, 32),
       "positional_embedding": torch.zeros(77, 64), "token_embedding.weight": torch.zeros(49408, 64),
       "ln_final.weight": torch.zeros(64)}
torch.save(vit, out + "/vit.pt")
`;
