/**
 * Benchmark of the word index (`npm run bench -- words`; results in bench/results/words.md).
 *
 *   1. Index build words/s vs the bare trunk at the same batch size, on the same words and model
 *      (MODEL_DIR, default the embedded model): the bare run feeds pre-rendered pixels to the trunk
 *      back to back, the build rasters, preprocesses, runs, reduces and writes (lexical scores off).
 *   2. A neighbours query (cosines over the whole index + top-10) over 20,000 words, for the
 *      model's C and for RN50-x4's C = 2,560, with onnxruntime's MatMul and the JavaScript loop,
 *      with and without a 71-neuron mask. Rows are random: the time does not depend on the values.
 *   3. Lexical detection (both ridge regressions, 5-fold) on 5,000 words, for the model's C.
 * BENCH_WORDS (default 2048) words are built; BENCH_BATCH (default 32) is the batch size.
 * With BENCH_LARGE_MODEL_DIR (e.g. a random-weight RN50-x4 from bench/export-rn50x4.sh, KEEP=1),
 * part 1 is repeated on it with BENCH_LARGE_WORDS (default 64) words at batch 8.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ClipModel } from '../src/clip/clip-model.js';
import { loadConfig, REPO_ROOT } from '../src/config.js';
import { buildWordIndex } from '../src/words/index-builder.js';
import { IndexStore } from '../src/words/index-store.js';
import { detectLexicalNeurons } from '../src/words/lexical.js';
import { JsProduct, OrtProduct } from '../src/words/matrix-product.js';
import { modelRenderer } from '../src/words/render.js';
import { RenderPool } from '../src/words/render-pool.js';
import { loadWordSettings } from '../src/words/settings.js';
import { defaultWords, makeVocabulary } from '../src/words/vocabulary.js';
import { WordIndex } from '../src/words/word-index.js';

const WORDS = Number(process.env.BENCH_WORDS ?? 2048);
const BATCH = Number(process.env.BENCH_BATCH ?? 32);
const LARGE_MODEL_DIR = process.env.BENCH_LARGE_MODEL_DIR;
const LARGE_WORDS = Number(process.env.BENCH_LARGE_WORDS ?? 64);
const configFor = (maxBatch: number) => ({
  ...loadConfig(),
  executionProviders: ['cpu' as const],
  redisUrl: undefined,
  maxBatch,
});
const config = configFor(BATCH);
type Log = (line: string) => void;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
const percentile = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(p * values.length))];

async function bareTrunk(model: ClipModel, pixels: Float32Array[]): Promise<number> {
  const started = performance.now();
  await model.neuronMaps(pixels); // the batcher runs maxBatch rows at a time, back to back
  return pixels.length / ((performance.now() - started) / 1000);
}

interface BuildRun {
  wordsPerSecond: number;
  /** Share of the wall time during which the trunk was running a batch. */
  trunkBusy: number;
}

/** Builds an index of `words`; `render` defaults to the real rasteriser. */
async function build(
  model: ClipModel,
  words: string[],
  dir: string,
  batchSize: number,
  render = modelRenderer(model),
  threads = 0,
): Promise<BuildRun> {
  const vocabulary = makeVocabulary(words, 'custom');
  const store = new IndexStore(dir, model.sha256, vocabulary.sha256);
  await store.removePartial();
  let trunkMs = 0;
  model.runObserver = (graph, _rows, ms) => void (graph === 'visual_trunk' && (trunkMs += ms));
  const started = performance.now();
  const { image_size: imageSize, mean, std } = model.directory.manifest;
  const pool = threads > 0 ? new RenderPool({ imageSize, mean, std }, threads) : undefined;
  await buildWordIndex({
    model,
    vocabulary,
    store,
    render,
    renderBatch: pool && ((batch) => pool.render(batch)),
    depth: pool ? threads + 2 : undefined,
    batchSize,
    lexical: false,
  });
  await pool?.close();
  const wallMs = performance.now() - started;
  model.runObserver = undefined;
  await rm(store.dir, { recursive: true, force: true });
  return { wordsPerSecond: words.length / (wallMs / 1000), trunkBusy: trunkMs / wallMs };
}

function randomIndex(rows: number, columns: number): WordIndex {
  const data = Float32Array.from({ length: rows * columns }, () => Math.random() - 0.5);
  return WordIndex.fromActivations(
    Array.from({ length: rows }, (_, i) => `w${i}`),
    data,
    columns,
  );
}

async function queryTimes(index: WordIndex, mask: number[] | undefined, runs = 40): Promise<number[]> {
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const query = index.row((r * 7919) % index.rows);
    const started = performance.now();
    await index.nearest(query, 10, { mask, exclude: [(r * 7919) % index.rows] });
    times.push(performance.now() - started);
  }
  return times.slice(3); // warm-up
}

/** Part 1 on one model: bare trunk, index build, and index build without rasterising. */
async function buildSection(model: ClipModel, count: number, batch: number, tmp: string, log: Log) {
  const words = (await defaultWords(20_000)).slice(0, count);
  const render = modelRenderer(model);
  const pixels = await Promise.all(
    words.map(async (word) => {
      const out = new Float32Array(model.pixelsPerImage);
      await render(word, out, 0);
      return out;
    }),
  );
  await bareTrunk(model, pixels.slice(0, batch * 2)); // warm-up
  const bare: number[] = [];
  const built: BuildRun[] = [];
  const blank: BuildRun[] = [];
  const threaded: BuildRun[] = [];
  const threads = loadWordSettings().renderThreads;
  const noRender = () => undefined; // blank pixels: the pipeline without the rasteriser's CPU time
  for (let round = 0; round < 2; round++) {
    bare.push(await bareTrunk(model, pixels));
    built.push(await build(model, words, tmp, batch));
    blank.push(await build(model, words, tmp, batch, noRender));
    threaded.push(await build(model, words, tmp, batch, modelRenderer(model), threads));
  }
  const raster = performance.now();
  for (const word of words.slice(0, 64)) await render(word, pixels[0], 0);
  const rasterMs = (performance.now() - raster) / Math.min(64, words.length);
  const cell = (r: BuildRun, i: number) =>
    `${r.wordsPerSecond.toFixed(1)} (${(r.wordsPerSecond / bare[i]).toFixed(2)}× bare, trunk busy ${(100 * r.trunkBusy).toFixed(0)}%)`;
  const row = (label: string, runs: BuildRun[]) => `| ${label} | ${runs.map(cell).join(' | ')} |`;
  log(
    `## 1. Index build vs bare trunk: \`${model.name}\` (S = ${model.imageSize}, C = ${model.neuronCount}), ${count} words, batch ${batch}, two alternating rounds\n`,
  );
  log(`| run | words/s round 1 | words/s round 2 |`);
  log(`|---|---|---|`);
  log(`| bare trunk (pre-rendered pixels, back to back) | ${bare[0].toFixed(1)} | ${bare[1].toFixed(1)} |`);
  log(row('index build, drawing on the main thread (raster + preprocess + trunk + means + writes)', built));
  log(row(`index build, drawing on ${threads} render thread(s) (WORD_RENDER_THREADS)`, threaded));
  log(row('index build, no-op renderer (the pipeline without rasterising)', blank));
  log(
    `\nRasterising + preprocessing one word at S = ${model.imageSize}: ${rasterMs.toFixed(2)} ms on the main thread;`,
  );
  log(`the bare trunk takes ${(1000 / bare[0]).toFixed(2)} ms of wall time per word.\n`);
}

async function lexicalSeconds(n: number, C: number, D: number): Promise<number> {
  const words = (await defaultWords(n)).slice(0, n);
  const responses = Float32Array.from({ length: n * C }, () => Math.random());
  const embeddings = words.map(() => Float32Array.from({ length: D }, () => Math.random() - 0.5));
  const started = performance.now();
  await detectLexicalNeurons({ words, responses, columns: C, embeddings });
  return (performance.now() - started) / 1000;
}

async function main() {
  const lines: string[] = [];
  const log = (line: string) => {
    console.log(line);
    lines.push(line);
  };
  const model = await ClipModel.load(config.modelDir, config);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-words-'));
  const loadBefore = os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  log(`# Word index benchmark\n`);
  log(
    `Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${os.cpus().length} cores (shared with other`,
  );
  log(
    `engineers' jobs: times are indicative), model \`${model.name}\` (S = ${model.imageSize}, C = ${model.neuronCount}),`,
  );
  log(
    `onnxruntime CPU, intra-op threads ${config.intraOpThreads || 'auto'}, batch ${BATCH}. Command: \`npm run bench -- words\`.\n`,
  );

  await buildSection(model, WORDS, BATCH, tmp, log);
  if (LARGE_MODEL_DIR) {
    const large = await ClipModel.load(LARGE_MODEL_DIR, configFor(8));
    await buildSection(large, LARGE_WORDS, 8, tmp, log);
    await large.release();
  }

  log(`## 2. Neighbours query over 20,000 words (cosines + top-10), milliseconds\n`);
  log(`| C | engine | mask | median | p95 |`);
  log(`|---|---|---|---|---|`);
  for (const C of [model.neuronCount, 2560]) {
    const index = randomIndex(20_000, C);
    const mask = Array.from({ length: 71 }, (_, i) => (i * 37) % C);
    const ort = await OrtProduct.create(index.centred, index.rows, index.columns, config.intraOpThreads);
    for (const [engine, product] of [
      ['onnxruntime MatMul', ort],
      ['JavaScript loop', new JsProduct(index.centred, index.rows, index.columns)],
    ] as const) {
      index.useProduct(product);
      for (const [name, ids] of [
        ['none', undefined],
        ['71 neurons', mask],
      ] as const) {
        const times = await queryTimes(index, ids ? [...ids] : undefined);
        log(
          `| ${C} | ${engine} | ${name} | ${median(times).toFixed(1)} | ${percentile(times, 0.95).toFixed(1)} |`,
        );
      }
    }
    await ort.release();
  }

  log(`\n## 3. Lexical detection (5,000 words, 517 spelling columns, 5 folds, random responses)\n`);
  log(`| C | D | seconds |`);
  log(`|---|---|---|`);
  const shapes = [[model.neuronCount, model.embedDim]];
  if (LARGE_MODEL_DIR) shapes.push([2560, 640]);
  for (const [C, D] of shapes) log(`| ${C} | ${D} | ${(await lexicalSeconds(5000, C, D)).toFixed(1)} |`);
  log('');
  log(
    `Load average before / after: ${loadBefore} / ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}.`,
  );
  await writeFile(path.join(REPO_ROOT, 'bench/results/words.md'), lines.join('\n') + '\n');
  await rm(tmp, { recursive: true, force: true });
  await model.release();
}

await main();
