/**
 * Tiny random-weight CLIP ResNets exported to model directories, for tests, plus the parity check
 * between an exported directory (run in onnxruntime-node) and PyTorch's reference outputs.
 *
 * Models are built by tools/export/make_tiny.py and tools/export/export_clip.py with Debian's
 * /usr/bin/python3, and cached under test/fixtures/generated/ keyed by seed, form and a hash of the
 * exporter's sources, so every test file (and every run) reuses them.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';

export const repoRoot = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const PYTHON = process.env.EXPORT_PYTHON ?? '/usr/bin/python3';
export const EXPORT_TOOLS = path.join(repoRoot, 'tools/export');
export const SHARED_VOCAB = path.resolve(repoRoot, '../shared/clip/bpe_simple_vocab_16e6.txt.gz');
export const GENERATED = path.join(repoRoot, 'test/fixtures/generated');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs Python (a script's path, `-m tools.…` or `-c` code) from the repository root, so the `tools`
 * package imports, with few threads; never rejects on a non-zero exit.
 */
export function runPython(args: readonly string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1' };
    const child = spawn(PYTHON, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

async function mustRun(args: readonly string[]): Promise<string> {
  const result = await runPython(args);
  if (result.code !== 0) {
    throw new Error(`${PYTHON} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
  }
  return result.stdout;
}

/** Exports a checkpoint into a new model directory (the exporter refuses an existing OUT_DIR). */
export function exportCheckpoint(checkpoint: string, outDir: string, extra: readonly string[] = []) {
  return runPython(['-m', 'tools.export.export_clip', checkpoint, outDir, '--vocab', SHARED_VOCAB, ...extra]);
}

let sourcesHash: Promise<string> | undefined;

/** Short hash of the exporter's Python sources: a changed exporter gets fresh cached models. */
function exporterHash(): Promise<string> {
  sourcesHash ??= (async () => {
    const hash = createHash('sha256');
    const files = (await readdir(EXPORT_TOOLS)).filter((f) => f.endsWith('.py')).sort();
    for (const file of files) hash.update(file).update(await readFile(path.join(EXPORT_TOOLS, file)));
    hash.update(await readFile(path.join(repoRoot, 'tools/hashing.py')));
    return hash.digest('hex').slice(0, 10);
  })();
  return sourcesHash;
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

/**
 * Builds `key` under test/fixtures/generated/ once: `build` fills a private temporary folder that is
 * then renamed into place, so concurrent test processes never see a half-written entry.
 */
async function cached(name: string, build: (dir: string) => Promise<void>): Promise<string> {
  const key = `${name}-${await exporterHash()}`;
  const dir = path.join(GENERATED, key);
  if (await exists(path.join(dir, '.complete'))) return dir;
  await mkdir(GENERATED, { recursive: true });
  const tmp = path.join(GENERATED, `.tmp-${key}-${process.pid}-${Math.random().toString(36).slice(2)}`);
  await mkdir(tmp);
  try {
    await build(tmp);
    await mkdir(path.join(tmp, '.complete'));
    await rename(tmp, dir);
    await removeStale(name, key);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    if (await exists(path.join(dir, '.complete'))) return dir; // another process won the race
    throw error;
  }
  return dir;
}

/** Removes entries of the same name made by an older exporter (another hash). */
async function removeStale(name: string, key: string): Promise<void> {
  const stale = (await readdir(GENERATED)).filter(
    (entry) =>
      entry !== key && entry.startsWith(`${name}-`) && /^[0-9a-f]{10}$/.test(entry.slice(name.length + 1)),
  );
  await Promise.all(stale.map((entry) => rm(path.join(GENERATED, entry), { recursive: true, force: true })));
}

export interface TinyModel {
  /** The checkpoint that was exported (plain state dict, or TorchScript archive in float16). */
  checkpoint: string;
  modelDir: string;
}

/** A tiny random CLIP ResNet (64 px, C = 512, D = 64) and its exported model directory. */
export async function prepareTinyModel(
  opts: { seed?: number; torchscript?: boolean } = {},
): Promise<TinyModel> {
  const seed = opts.seed ?? 1;
  const form = opts.torchscript ? 'torchscript' : 'plain';
  const checkpointName = opts.torchscript ? 'checkpoint_ts.pt' : 'checkpoint.pt';
  const dir = await cached(`tiny-seed${seed}-${form}`, async (tmp) => {
    const plain = path.join(tmp, 'checkpoint.pt');
    const scriptArgs = opts.torchscript ? ['--torchscript', path.join(tmp, checkpointName), '--fp16'] : [];
    await mustRun(['-m', 'tools.export.make_tiny', plain, '--seed', String(seed), ...scriptArgs]);
    const result = await exportCheckpoint(path.join(tmp, checkpointName), path.join(tmp, 'model'));
    if (result.code !== 0) throw new Error(`export_clip.py exited ${result.code}: ${result.stderr.trim()}`);
  });
  return { checkpoint: path.join(dir, checkpointName), modelDir: path.join(dir, 'model') };
}

/** The model directory of a tiny random CLIP ResNet, cached by seed and form. */
export async function exportTinyModel(opts: { seed?: number; torchscript?: boolean } = {}): Promise<string> {
  return (await prepareTinyModel(opts)).modelDir;
}

/** Exports any checkpoint once into test/fixtures/generated/<name>-<exporter hash>/model. */
export async function exportCheckpointCached(name: string, checkpoint: string): Promise<string> {
  const dir = await cached(name, async (tmp) => {
    const result = await exportCheckpoint(checkpoint, path.join(tmp, 'model'));
    if (result.code !== 0) throw new Error(`export_clip.py exited ${result.code}: ${result.stderr.trim()}`);
  });
  return path.join(dir, 'model');
}

/** Runs tools/export/reference.py on a checkpoint (cached next to it) and parses the result. */
export async function referenceOutputs(checkpoint: string, outJson?: string): Promise<Reference> {
  const out = outJson ?? `${checkpoint}.reference.json`;
  if (!(await exists(out))) await mustRun(['-m', 'tools.export.reference', checkpoint, out]);
  return JSON.parse(await readFile(out, 'utf8')) as Reference;
}

// ---------------------------------------------------------------------------------------------
// Parity: onnxruntime outputs vs the reference, relative error = max|a - b| / max|b|.

export interface EncodedArray {
  dtype: 'float32';
  shape: number[];
  base64: string;
}

export interface Reference {
  token_rows: number[][];
  pixel_values: EncodedArray;
  text_embeds: EncodedArray;
  neurons: EncodedArray;
  image_embeds: EncodedArray;
  attribution: EncodedArray;
  top10: number[][];
  top10_margin_10th_minus_11th: number[];
  config: { context_length: number };
}

export function decodeArray(array: EncodedArray): Float32Array {
  const bytes = Buffer.from(array.base64, 'base64');
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}

export interface ClipSessions {
  text: ort.InferenceSession;
  trunk: ort.InferenceSession;
  head: ort.InferenceSession;
  /** W row-major [C, D]. */
  bilinear: Float32Array;
  embedDim: number;
  neuronCount: number;
}

export async function loadSessions(modelDir: string): Promise<ClipSessions> {
  const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };
  const manifest = JSON.parse(await readFile(path.join(modelDir, 'clip.json'), 'utf8')) as {
    embed_dim: number;
    neuron_count: number;
  };
  const bytes = await readFile(path.join(modelDir, 'bilinear.f32'));
  const bilinear = new Float32Array(bytes.length / 4);
  new Uint8Array(bilinear.buffer).set(bytes);
  return {
    text: await ort.InferenceSession.create(path.join(modelDir, 'text.onnx'), options),
    trunk: await ort.InferenceSession.create(path.join(modelDir, 'visual_trunk.onnx'), options),
    head: await ort.InferenceSession.create(path.join(modelDir, 'visual_head.onnx'), options),
    bilinear,
    embedDim: manifest.embed_dim,
    neuronCount: manifest.neuron_count,
  };
}

/** text_embeds [R·D] for rows zero-padded to `length` (default: each row's own length). */
export async function runText(
  s: ClipSessions,
  rows: readonly number[][],
  length?: number,
): Promise<Float32Array> {
  if (length === undefined) {
    const out = new Float32Array(rows.length * s.embedDim);
    for (const [r, row] of rows.entries()) out.set(await runText(s, [row], row.length), r * s.embedDim);
    return out;
  }
  const ids = new BigInt64Array(rows.length * length);
  rows.forEach((row, r) => row.forEach((id, i) => (ids[r * length + i] = BigInt(id))));
  const feeds = { input_ids: new ort.Tensor('int64', ids, [rows.length, length]) };
  return (await s.text.run(feeds)).text_embeds.data as Float32Array;
}

export async function runTensor(
  session: ort.InferenceSession,
  input: string,
  data: Float32Array,
  dims: readonly number[],
): Promise<Float32Array> {
  const outputs = await session.run({ [input]: new ort.Tensor('float32', data, dims) });
  return outputs[session.outputNames[0]].data as Float32Array;
}

/** W·t for each row of t [R·D]: [R·C], accumulated in float64. */
export function attribution(s: ClipSessions, text: Float32Array): Float64Array {
  const { neuronCount: C, embedDim: D, bilinear: W } = s;
  const rows = text.length / D;
  const out = new Float64Array(rows * C);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < C; c++) {
      let sum = 0;
      for (let d = 0; d < D; d++) sum += W[c * D + d] * text[r * D + d];
      out[r * C + c] = sum;
    }
  }
  return out;
}

/** Ids of the k largest values, largest first. */
export function topK(values: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: values.length }, (_, i) => i)
    .sort((a, b) => values[b] - values[a] || a - b)
    .slice(0, k);
}

export interface ParityReport {
  /** Relative error of each output (text at L = context and at each row's own length). */
  relativeErrors: {
    text_L_context: number;
    text_L_shortest: number;
    neurons: number;
    image_embeds: number;
    head_on_reference_neurons: number;
    attribution_L_context: number;
    attribution_L_shortest: number;
  };
  /** Top-10 neuron sets of W·t that differ from the reference (each row at both lengths). */
  top10Mismatches: number;
  /** Smallest gap between the 10th and 11th reference attribution (how fragile the sets are). */
  minTop10Margin: number;
}

/** Runs the three graphs on the reference inputs and compares every output. */
export async function checkParity(s: ClipSessions, ref: Reference): Promise<ParityReport> {
  const rows = ref.token_rows;
  const text = decodeArray(ref.text_embeds);
  const textContext = await runText(s, rows, ref.config.context_length);
  const textShortest = await runText(s, rows);
  const [, C, h, w] = ref.neurons.shape;
  const images = ref.pixel_values.shape[0];
  const neurons = await runTensor(
    s.trunk,
    'pixel_values',
    decodeArray(ref.pixel_values),
    ref.pixel_values.shape,
  );
  const refNeurons = decodeArray(ref.neurons);
  const imageEmbeds = await runTensor(s.head, 'neurons', neurons, [images, C, h, w]);
  const headOnRef = await runTensor(s.head, 'neurons', refNeurons, [images, C, h, w]);
  const refAttribution = decodeArray(ref.attribution);
  const aContext = attribution(s, textContext);
  const aShortest = attribution(s, textShortest);
  let mismatches = 0;
  rows.forEach((_, r) => {
    const want = [...ref.top10[r]].sort((a, b) => a - b).join();
    for (const a of [aContext, aShortest]) {
      const got = topK(a.subarray(r * C, (r + 1) * C), 10).sort((x, y) => x - y);
      if (got.join() !== want) mismatches++;
    }
  });
  const refImage = decodeArray(ref.image_embeds);
  return {
    relativeErrors: {
      text_L_context: relativeError(textContext, text),
      text_L_shortest: relativeError(textShortest, text),
      neurons: relativeError(neurons, refNeurons),
      image_embeds: relativeError(imageEmbeds, refImage),
      head_on_reference_neurons: relativeError(headOnRef, refImage),
      attribution_L_context: relativeError(aContext, refAttribution),
      attribution_L_shortest: relativeError(aShortest, refAttribution),
    },
    top10Mismatches: mismatches,
    minTop10Margin: Math.min(...ref.top10_margin_10th_minus_11th),
  };
}
