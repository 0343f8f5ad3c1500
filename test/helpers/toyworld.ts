/**
 * The embedded model (models/toyworld) on held-out renders of its world, through the exported ONNX
 * graphs and onnxruntime-node (what the service runs), shared by the tests that measure it.
 *
 * Two disjoint held-out seeds (tools/toyworld/heldout.py): the neuron scales (neuron_scales.json,
 * applied by gauge.py) and the neuron labels (neurons.json) were calibrated on CALIBRATION_SEED;
 * every figure of the model card is measured on EVALUATION_SEED, whose images the calibration never
 * saw. Both seeds lie outside the training stream (heldout.py draws from Random(10_000_019 + seed),
 * training from Random(seed · 1000 + worker)).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { loadModelDirectory, type ModelDirectory } from '../../src/clip/model-directory.js';
import { ClipTokenizer } from '../../src/clip/tokenizer.js';
import { repoRoot } from './tiny-model.js';

export const TOYWORLD_DIR = path.join(repoRoot, 'models', 'toyworld');
/** The seed whose held-out images calibrated the neuron scales and labels. */
export const CALIBRATION_SEED = 7;
/** The seed every figure of the model card is measured on. */
export const EVALUATION_SEED = 8;
/**
 * A seed used for nothing else: not training, labels or scales, nor choosing between issue 22's
 * training levers (which seed 8 also compared). The model test measures it too.
 */
export const UNTOUCHED_SEED = 9;

const PYTHON = '/usr/bin/python3';

export interface HeldoutItem {
  file: string;
  set: string;
  label: string;
  word?: string;
}
export interface HeldoutTask {
  sets: string[];
  classes: string[];
  templates: string[];
}
export interface Heldout {
  seed: number;
  tasks: Record<string, HeldoutTask>;
  directions: Record<string, { classes: string[]; picture_set: string }>;
  prompts: Record<string, number[] | null>;
  items: HeldoutItem[];
  /** Where the PNGs are. */
  dir: string;
}

export interface Toyworld {
  directory: ModelDirectory;
  tokenizer: ClipTokenizer;
  text: ort.InferenceSession;
  trunk: ort.InferenceSession;
  head: ort.InferenceSession;
  release(): Promise<void>;
}

export async function openToyworld(modelDir = TOYWORLD_DIR): Promise<Toyworld> {
  const directory = await loadModelDirectory(modelDir); // the service's own validation (hashes, schema)
  const { manifest } = directory;
  const tokenizer = await ClipTokenizer.fromMergesFile(path.join(modelDir, manifest.tokenizer.merges), {
    vocabSize: manifest.vocab_size,
    contextLength: manifest.context_length,
  });
  const [text, trunk, head] = await Promise.all(
    ['text.onnx', 'visual_trunk.onnx', 'visual_head.onnx'].map((file) =>
      ort.InferenceSession.create(path.join(modelDir, file), { intraOpNumThreads: 2 }),
    ),
  );
  return {
    directory,
    tokenizer,
    text,
    trunk,
    head,
    release: async () => {
      await Promise.all([text.release(), trunk.release(), head.release()]);
    },
  };
}

/** Draws the held-out renders of `seed` into a temporary folder (removed by the returned cleanup). */
export async function generateHeldout(
  seed: number,
  merges = path.join(TOYWORLD_DIR, 'bpe_toyworld.txt'),
): Promise<{ heldout: Heldout; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `toyworld-heldout-${seed}-`));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  const gen = spawnSync(
    PYTHON,
    ['-m', 'tools.toyworld.heldout', '--seed', String(seed), '--out', dir, '--merges', merges],
    { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } },
  );
  if (gen.status !== 0) {
    await cleanup();
    throw new Error(`heldout.py --seed ${seed} failed: ${gen.stderr.trim().split('\n').pop() ?? ''}`);
  }
  const heldout = JSON.parse(await readFile(path.join(dir, 'heldout.json'), 'utf8')) as Omit<Heldout, 'dir'>;
  return { heldout: { ...heldout, dir }, cleanup };
}

export function l2normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s) || 1;
  return v.map((x) => x / n);
}

export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Text embeddings (not normalised) of every text, by the service's tokenizer and text.onnx. */
export async function embedTexts(
  model: Toyworld,
  texts: readonly string[],
): Promise<Map<string, Float32Array>> {
  const D = model.directory.manifest.embed_dim;
  const out = new Map<string, Float32Array>();
  for (let start = 0; start < texts.length; start += 256) {
    const rows = texts.slice(start, start + 256).map((text) => model.tokenizer.encode(text).ids);
    const L = Math.max(...rows.map((r) => r.length));
    const ids = new BigInt64Array(rows.length * L);
    rows.forEach((row, r) => row.forEach((id, i) => (ids[r * L + i] = BigInt(id))));
    const result = await model.text.run({ input_ids: new ort.Tensor('int64', ids, [rows.length, L]) });
    const data = result.text_embeds.data as Float32Array;
    rows.forEach((_, r) => out.set(texts[start + r], data.slice(r * D, (r + 1) * D)));
  }
  return out;
}

export interface Encoded {
  /** Image embeddings as the head gives them (not normalised). */
  embeds: Float32Array[];
  /** The neurons' spatial means x (the article's neuron activations). */
  means: Float32Array[];
}

/**
 * Runs trunk and head over images given as RGB bytes at model size (`rgbOf`), 128 at a time: the
 * service's normalisation, then the neurons' spatial means and the image embeddings.
 */
export async function encodeImages<T>(
  model: Toyworld,
  items: readonly T[],
  rgbOf: (item: T) => Promise<Uint8Array>,
): Promise<Encoded> {
  const { manifest } = model.directory;
  const S = manifest.image_size;
  const C = manifest.neuron_count;
  const D = manifest.embed_dim;
  const [gh, gw] = manifest.neuron_grid;
  const plane = S * S;
  const cells = gh * gw;
  const embeds: Float32Array[] = [];
  const means: Float32Array[] = [];
  for (let start = 0; start < items.length; start += 128) {
    const batch = items.slice(start, start + 128);
    const pixels = new Float32Array(batch.length * 3 * plane);
    await Promise.all(
      batch.map(async (item, b) => {
        const raw = await rgbOf(item);
        for (let p = 0; p < plane; p++) {
          for (let c = 0; c < 3; c++) {
            pixels[b * 3 * plane + c * plane + p] =
              (raw[p * 3 + c] / 255 - manifest.mean[c]) / manifest.std[c];
          }
        }
      }),
    );
    const trunk = await model.trunk.run({
      pixel_values: new ort.Tensor('float32', pixels, [batch.length, 3, S, S]),
    });
    const neurons = trunk.neurons.data as Float32Array;
    const head = await model.head.run({
      neurons: new ort.Tensor('float32', neurons, [batch.length, C, gh, gw]),
    });
    const image = head.image_embeds.data as Float32Array;
    for (let b = 0; b < batch.length; b++) {
      embeds.push(image.slice(b * D, (b + 1) * D));
      const m = new Float32Array(C);
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let k = 0; k < cells; k++) s += neurons[b * C * cells + c * cells + k];
        m[c] = s / cells;
      }
      means.push(m);
    }
  }
  return { embeds, means };
}

/** The RGB bytes of a held-out PNG. */
export async function heldoutRgb(heldout: Heldout, item: HeldoutItem): Promise<Uint8Array> {
  return sharp(await readFile(path.join(heldout.dir, item.file)))
    .removeAlpha()
    .raw()
    .toBuffer();
}

/** The held-out sets a neuron is labelled by, and the family each stands for (as evaluate.py). */
const LABEL_FAMILIES: Record<string, string> = {
  colour_patch: 'colour',
  shape: 'shape',
  face: 'expression',
  word: 'word',
  word_all: 'word',
};

export interface NeuronCalibration {
  /** Per neuron: the concept whose held-out images activate it most, and its family. */
  labels: ({ label: string; family: string } | undefined)[];
  /** Per neuron: its mean activation on that concept's images (its scale, as evaluate.py takes it). */
  preferred: number[];
}

/**
 * evaluate.py's calibration from a seed's images: the mean spatial-mean activation of every neuron
 * per (family, concept), the concept of the largest mean as the label, that mean as the scale (on
 * the exported, already scaled model: the factor by which its scales would change).
 */
export function calibrate(items: readonly HeldoutItem[], means: readonly Float32Array[]): NeuronCalibration {
  const C = means[0].length;
  const sums = new Map<string, { family: string; label: string; sum: Float64Array; n: number }>();
  items.forEach((item, i) => {
    const family = LABEL_FAMILIES[item.set];
    if (!family) return;
    const key = `${family}\u0000${item.label}`;
    let entry = sums.get(key);
    if (!entry) sums.set(key, (entry = { family, label: item.label, sum: new Float64Array(C), n: 0 }));
    for (let c = 0; c < C; c++) entry.sum[c] += means[i][c];
    entry.n++;
  });
  // evaluate.py sorts the (family, concept) keys and takes the first maximum.
  const keys = [...sums.keys()].sort();
  const labels: NeuronCalibration['labels'] = [];
  const preferred: number[] = [];
  for (let c = 0; c < C; c++) {
    let best = -Infinity;
    let bestKey = keys[0];
    for (const key of keys) {
      const entry = sums.get(key)!;
      const mean = entry.sum[c] / entry.n;
      if (mean > best) [best, bestKey] = [mean, key];
    }
    const entry = sums.get(bestKey)!;
    preferred.push(best);
    labels.push(best > 1e-6 ? { label: entry.label, family: entry.family } : undefined);
  }
  return { labels, preferred };
}

/** Pearson's correlation of two equally long series. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) [mx, my] = [mx + x[i] / n, my + y[i] / n];
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const [dx, dy] = [x[i] - mx, y[i] - my];
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxy / Math.sqrt(sxx * syy);
}
