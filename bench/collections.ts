/**
 * Benchmark of image collections (`npx tsx bench/collections.ts`; results in
 * bench/results/collections.md):
 *
 *   1. Build images/s vs the bare model at the same batch size, on the same images and model
 *      (MODEL_DIR, default the embedded model), median of BENCH_ROUNDS (default 3) rounds, each
 *      round running all of: the bare trunk on pre-decoded pixels (and, second figure, the trunk
 *      then the head) back to back; decoding, preprocessing and thumbnails alone; and the build as
 *      the service runs it (a collection-build job, in process: decoding overlaps trunk and head,
 *      then reduce, shard file, commit with fsync), then the shard computation alone with where its
 *      time goes (builder.ts ShardTimings). The bare trunk and the build run back to back and each
 *      round's ratio is reported (their median is the figure to quote on a shared machine).
 *      BENCH_QUICK=1 runs only those rows; BENCH_NAIVE_HEAD=file.onnx times the model's head graph
 *      beside another one (the traced AttentionPool2d) on the same maps. BENCH_BUILD_ONLY=1 stops
 *      there and writes bench/results/collections-build.md (or BENCH_RESULT) instead.
 *   2. Queries over a synthetic collection at RN50-x4 size (C = 2,560, D = 640; random rows,
 *      BENCH_QUERY_IMAGES, default 100,000, written straight into the storage format): top-k of a
 *      neuron by mean and by max, its distribution, text retrieval by a given embedding, the
 *      neurons of a category; median of 5 runs each, first on the row-major files alone, then with
 *      the column-major blocks (columns.ts); and the process's RSS afterwards.
 *   3. Retrieval on the same collection (retrieval.ts), median and p90 of BENCH_RETRIEVAL_RUNS
 *      (default 20): text retrieval (cosine over the embeddings, given the text embedding) by the
 *      service's engine (the embeddings held in memory, an 8-bit screen by onnxruntime's
 *      MatMulInteger, then the candidates scored exactly; on the retrieval thread) and, in the same
 *      run, by the engines it replaced or could use (a JavaScript loop, the file read per query,
 *      onnxruntime's Float32 product); a neuron's top images; a sparse and a dense direction (the
 *      same 8-bit screen over the means' codes, dot and cosine); the RSS before and after the
 *      collection's embeddings and the means' codes are loaded.
 *
 * BENCH_IMAGES (default 256) images of 320 × 240 are built at BENCH_BATCH (default 16).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { ClipModel } from '../src/clip/clip-model.js';
import { boundedDecode } from '../src/clip/encoders.js';
import { decodeImage, pixelValuesOf } from '../src/clip/image.js';
import { Semaphore } from '../src/clip/semaphore.js';
import { shardSizeOf } from '../src/collections/build-job.js';
import { computeShard, type ShardTimings } from '../src/collections/builder.js';
import { CollectionReader } from '../src/collections/reader.js';
import { CollectionSearch } from '../src/collections/retrieval.js';
import { CollectionService } from '../src/collections/service.js';
import { OrtProduct } from '../src/words/matrix-product.js';
import { loadCollectionSettings } from '../src/collections/settings.js';
import { writeColumnBlocks } from '../src/collections/columns.js';
import {
  COLUMN_BLOCK,
  CollectionStore,
  emptyBuild,
  FILES,
  type CollectionManifest,
} from '../src/collections/store.js';
import { loadConfig, REPO_ROOT } from '../src/config.js';

const IMAGES = Number(process.env.BENCH_IMAGES ?? 256);
const BATCH = Number(process.env.BENCH_BATCH ?? 16);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const QUICK = process.env.BENCH_QUICK === '1';
const QUERY_IMAGES = Number(process.env.BENCH_QUERY_IMAGES ?? 100_000);
const lines: string[] = [];
const log = (line: string) => {
  console.log(line);
  lines.push(line);
};
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function picture(i: number): Promise<Buffer> {
  const hue = (i * 37) % 360;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240">
    <rect width="100%" height="100%" fill="hsl(${hue},60%,50%)"/>
    <circle cx="${60 + (i % 200)}" cy="120" r="${30 + (i % 50)}" fill="hsl(${(hue + 180) % 360},70%,50%)"/>
    <text x="20" y="40" font-size="28" fill="white">${i}</text></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

const tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-collections-'));
try {
  const config = {
    ...loadConfig(),
    executionProviders: ['cpu' as const],
    redisUrl: undefined,
    maxBatch: BATCH,
  };
  const model = await ClipModel.load(config.modelDir, config);
  const { manifest: m } = model.directory;
  const spec = { imageSize: m.image_size, mean: m.mean, std: m.std };
  log(`# Collections benchmark (${new Date().toISOString()})`);
  log('');
  log(
    `model ${model.name} (C = ${model.neuronCount}, D = ${model.embedDim}, ${m.image_size} px), cpu, ${os.cpus().length} cores`,
  );
  log('');
  const pngs = await Promise.all(Array.from({ length: IMAGES }, (_, i) => picture(i)));
  const pixels = await Promise.all(pngs.map(async (png) => pixelValuesOf(await decodeImage(png), spec)));

  // Warm-up, then rounds of: the bare model on the same pixels (trunk; trunk then head), decoding
  // alone, and the build as the service runs it (a collection-build job in process, its shards),
  // one after the other in each round, so that the ratios compare runs under the same load.
  await model.neuronMaps(pixels.slice(0, BATCH));
  const store = new CollectionStore(path.join(tmp, 'data'));
  const buildSettings = { ...loadCollectionSettings(), batchSize: BATCH };
  const decode = boundedDecode(new Semaphore(config.imageDecodeConcurrency), config.maxImagePixels);
  const service = new CollectionService(store, model, spec, decode, buildSettings, {
    info: () => undefined,
    warn: () => undefined,
  });
  const { createHash } = await import('node:crypto');
  const rates = {
    bareTrunk: [] as number[],
    bareBoth: [] as number[],
    decode: [] as number[],
    build: [] as number[],
    shard: [] as number[],
  };
  // Each round's build / bare trunk, the two run back to back (the machine is shared: ratios of
  // neighbouring runs are what can be compared).
  const ratios: number[] = [];
  // The same in process CPU time per image (every thread of this process: the model's, libuv's,
  // the main one), which the other processes on a shared machine disturb far less than wall time.
  const cpuRatios: number[] = [];
  const cpuPerImage = { bare: [] as number[], build: [] as number[] };
  const cpuSince = (since: NodeJS.CpuUsage) => {
    const used = process.cpuUsage(since);
    return (used.user + used.system) / 1000 / IMAGES;
  };
  const stages: ShardTimings[] = [];
  const perSecond = (count: number, since: number) => count / ((performance.now() - since) / 1000);
  for (let round = 0; round < ROUNDS; round++) {
    let started = performance.now();
    let cpu = process.cpuUsage();
    await model.neuronMaps(pixels);
    rates.bareTrunk.push(perSecond(IMAGES, started));
    cpuPerImage.bare.push(cpuSince(cpu));
    const id = `bench-${round}`;
    await service.create(id, 'bench');
    const entries = [];
    for (const [i, png] of pngs.entries()) {
      const sha256 = createHash('sha256').update(png).digest('hex');
      await store.putImage(id, sha256, png);
      entries.push({ name: `${i}.png`, category: `c${i % 10}`, caption: null, sha256, bytes: png.length });
    }
    await store.appendPending(id, entries);
    started = performance.now();
    cpu = process.cpuUsage();
    await service.startBuild(id);
    await service.settled(id);
    const built = await service.get(id);
    if (built.images !== IMAGES) throw new Error(`the build indexed ${built.images} of ${IMAGES} images`);
    rates.build.push(perSecond(built.images, started));
    cpuPerImage.build.push(cpuSince(cpu));
    ratios.push(rates.build[round] / rates.bareTrunk[round]);
    cpuRatios.push(cpuPerImage.bare[round] / cpuPerImage.build[round]);
    // The shard computation alone (no job, no shard file, no commit), with where its time goes.
    const timings: ShardTimings = { decodeWait: 0, modelWait: 0, reduce: 0, onBatch: 0 };
    started = performance.now();
    await computeShard({
      store,
      id,
      model,
      spec,
      decode,
      batchSize: BATCH,
      entries,
      known: new Set(),
      shouldStop: async () => false,
      timings,
    });
    rates.shard.push(perSecond(IMAGES, started));
    stages.push(timings);
    // BENCH_QUICK=1: only the rows above (bare trunk, build, shard computation), on a loaded machine.
    if (QUICK) continue;
    started = performance.now();
    for (let i = 0; i < IMAGES; i += BATCH) {
      await model.imageEmbeddingsFromNeurons(await model.neuronMaps(pixels.slice(i, i + BATCH)));
    }
    rates.bareBoth.push(perSecond(IMAGES, started));
    // Decoding, preprocessing and the thumbnail alone, a batch at a time as the build prepares them.
    started = performance.now();
    for (let i = 0; i < IMAGES; i += BATCH) {
      await Promise.all(
        pngs.slice(i, i + BATCH).map(async (png) => {
          const decoded = await decodeImage(png);
          pixelValuesOf(decoded, spec);
          await sharp(decoded.data, { raw: { width: decoded.width, height: decoded.height, channels: 3 } })
            .resize(64, 64, { fit: 'inside', withoutEnlargement: true })
            .png()
            .toBuffer();
        }),
      );
    }
    rates.decode.push(perSecond(IMAGES, started));
  }
  await service.stop();
  const bareTrunk = median(rates.bareTrunk);
  const row = (what: string, values: number[]) =>
    log(
      `| ${what} | ${median(values).toFixed(1)} | ${(median(values) / bareTrunk).toFixed(2)} | ${values.map((v) => v.toFixed(1)).join(', ')} |`,
    );
  log(
    `## Build, ${IMAGES} PNGs of 320 × 240, batch ${BATCH}, shards of ${Math.min(shardSizeOf(), IMAGES)} (median of ${ROUNDS} rounds)`,
  );
  log('');
  log('| run | images/s | ratio to bare trunk | each round |');
  log('|---|---|---|---|');
  row('bare trunk (pre-decoded pixels)', rates.bareTrunk);
  if (!QUICK) {
    row('bare trunk + head, batch by batch', rates.bareBoth);
    row('decode, preprocess and thumbnail alone (a batch at a time, on libuv threads)', rates.decode);
  }
  row(
    'collection build: a collection-build job (decode overlapping trunk and head, reduce, shard file, commit with fsync)',
    rates.build,
  );
  row(
    'the shard computation alone (computeShard: decode, trunk, head, reduce; no job, no files)',
    rates.shard,
  );
  log('');
  log(
    `**Build / bare trunk, each round's two runs back to back: median ${median(ratios).toFixed(2)}×** (rounds ${ratios.map((r) => r.toFixed(2)).join(', ')}).`,
  );
  log('');
  log(
    `In CPU time of this process per image: bare trunk ${median(cpuPerImage.bare).toFixed(0)} ms, build ${median(cpuPerImage.build).toFixed(0)} ms; **bare / build, each round: median ${median(cpuRatios).toFixed(2)}×** (rounds ${cpuRatios.map((r) => r.toFixed(2)).join(', ')}): the build's throughput relative to the bare trunk's where both have the cores to themselves, less any time the build leaves them idle.`,
  );
  log('');
  const stage = (name: keyof ShardTimings) => median(stages.map((s) => s[name] / 1000)).toFixed(2);
  log(
    `Where the shard computation's wall time goes (main thread, median over rounds, seconds for ${IMAGES} images): waiting for the model (trunk + head) ${stage('modelWait')}, waiting for decoding ${stage('decodeWait')}, reducing the maps ${stage('reduce')}, stop checks and progress ${stage('onBatch')}.`,
  );
  log('');
  if (process.env.BENCH_NAIVE_HEAD) {
    // The model's head beside another head graph (the traced AttentionPool2d) on the same neuron
    // maps, alternating, each on its own session with the same thread settings.
    const maps = await model.neuronMaps(pixels.slice(0, BATCH));
    const [hh, ww] = model.neuronGrid;
    const input = new Float32Array(BATCH * model.valuesPerNeuronMap);
    maps.forEach((map, i) => input.set(map, i * model.valuesPerNeuronMap));
    const options = { executionProviders: ['cpu'], graphOptimizationLevel: 'all' as const };
    const heads = {
      model: await ort.InferenceSession.create(path.join(config.modelDir, 'visual_head.onnx'), options),
      naive: await ort.InferenceSession.create(process.env.BENCH_NAIVE_HEAD, options),
    };
    const times = { model: [] as number[], naive: [] as number[] };
    let worst = 0;
    for (let rep = 0; rep < 6; rep++) {
      const outputs: Float32Array[] = [];
      for (const name of ['model', 'naive'] as const) {
        const t0 = performance.now();
        const out = await heads[name].run({
          neurons: new ort.Tensor('float32', input, [BATCH, model.neuronCount, hh, ww]),
        });
        if (rep > 0) times[name].push(performance.now() - t0);
        outputs.push(out.image_embeds.data as Float32Array);
      }
      let top = 0;
      for (const v of outputs[1]) top = Math.max(top, Math.abs(v));
      for (let i = 0; i < outputs[0].length; i++)
        worst = Math.max(worst, Math.abs(outputs[0][i] - outputs[1][i]) / top);
    }
    log(
      `Head graphs on one batch of ${BATCH} neuron maps (median of 5, alternating): the model's ${median(times.model).toFixed(0)} ms, the traced AttentionPool2d ${median(times.naive).toFixed(0)} ms (${(median(times.naive) / median(times.model)).toFixed(1)}×); their embeddings differ by ${worst.toExponential(1)} of the largest value. One trunk batch: ${((BATCH / bareTrunk) * 1000).toFixed(0)} ms.`,
    );
    log('');
    await heads.model.release();
    await heads.naive.release();
  }
  if (process.env.BENCH_BUILD_ONLY === '1') {
    await model.release();
    await mkdir(path.join(REPO_ROOT, 'bench', 'results'), { recursive: true });
    const name = process.env.BENCH_RESULT ?? 'collections-build.md';
    await writeFile(path.join(REPO_ROOT, 'bench', 'results', name), lines.join('\n') + '\n');
    await rm(tmp, { recursive: true, force: true });
    process.exit(0);
  }
  await model.release();

  // 2. A synthetic collection at RN50-x4 size, written straight into the format.
  const C = 2560;
  const D = 640;
  const N = QUERY_IMAGES;
  const id = 'synthetic';
  const manifest: CollectionManifest = {
    format: 1,
    id,
    name: id,
    owner: 'bench',
    createdAt: new Date().toISOString(),
    model: { sha256: 'synthetic', neurons: C, embedDim: D, grid: [9, 9] },
    images: N,
    bytes: 0,
    metaBytes: 0,
    thumbBytes: 0,
    pendingBytes: 0,
    categories: Array.from({ length: 20 }, (_, i) => `c${i}`),
    categoryCounts: new Array<number>(20).fill(N / 20),
    build: emptyBuild(),
    columnBlock: COLUMN_BLOCK,
    columnBlocks: 0,
  };
  const filling = performance.now();
  await mkdir(store.dir(id), { recursive: true });
  const fill = async (name: string, bytes: number) => {
    const handle = await open(store.file(id, name), 'w');
    const chunk = 8 * 1024 * 1024;
    for (let at = 0; at < bytes; at += chunk) {
      const size = Math.min(chunk, bytes - at);
      const values = new Float32Array(size / 4);
      for (let i = 0; i < values.length; i++) values[i] = Math.random() * 2 - 1;
      await handle.write(new Uint8Array(values.buffer), 0, size, at);
    }
    await handle.close();
  };
  await fill(FILES.means, N * C * 4);
  await fill(FILES.maxima, N * C * 4);
  await fill(FILES.embeddings, N * D * 4);
  await writeFile(store.file(id, FILES.argmax), randomBytes(N * C * 2));
  const codes = Buffer.alloc(N * 4);
  for (let i = 0; i < N; i++) codes.writeUInt32LE(i % 20, i * 4);
  await writeFile(store.file(id, FILES.categories), codes);
  const metaLines: string[] = [];
  let metaBytes = 0;
  const index = Buffer.alloc(N * 8);
  for (let i = 0; i < N; i++) {
    index.writeDoubleLE(metaBytes, i * 8);
    const line =
      JSON.stringify({
        id: i,
        name: `${i}.png`,
        category: `c${i % 20}`,
        caption: null,
        sha256: '',
        bytes: 0,
        width: 1,
        height: 1,
        thumb: [0, 0],
        addedAt: '',
      }) + '\n';
    metaLines.push(line);
    metaBytes += Buffer.byteLength(line);
  }
  await writeFile(store.file(id, FILES.meta), metaLines.join(''));
  await writeFile(store.file(id, FILES.metaIndex), index);
  await store.writeManifest({ ...manifest, metaBytes });
  const filled = (performance.now() - filling) / 1000;
  const queryModel = {
    sha256: 'synthetic',
    neuronCount: C,
    embedDim: D,
    neuronGrid: [9, 9] as const,
  } as unknown as ClipModel;
  const queries = new CollectionService(store, queryModel, spec, decode, loadCollectionSettings(), {
    info: () => undefined,
    warn: () => undefined,
  });
  const time = async (run: () => Promise<unknown>) => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await run();
      times.push(performance.now() - t0);
    }
    return median(times);
  };
  const text = new Float32Array(D).map(() => Math.random() - 0.5);
  const measure = async () =>
    [
      [
        'top-12 images of a neuron by mean (+ 5 quantile bands)',
        await time(() => queries.topImages(7, id, { k: 12, by: 'mean', bins: 5, perBin: 3 })),
      ],
      [
        'top-12 images of a neuron by max',
        await time(() => queries.topImages(7, id, { k: 12, by: 'max', bins: 0, perBin: 3 })),
      ],
      [
        'distribution of a neuron (20 categories)',
        await time(() => queries.distribution(7, id, { by: 'mean', bins: 20, buckets: 5, threshold: 0 })),
      ],
      [
        'neurons of a category (one pass over means.f32)',
        await time(() => queries.categoryNeurons(id, 'c3', 20)),
      ],
    ] as const;
  const rowMajor = await measure();
  const transposing = performance.now();
  await writeColumnBlocks(store, (await store.manifest(id)) as CollectionManifest);
  const transposed = (performance.now() - transposing) / 1000;
  const blocked = await measure();
  log(`## Queries over a synthetic collection: ${N.toLocaleString('en')} images, C = ${C}, D = ${D}`);
  log('');
  log(
    `Random rows written in ${filled.toFixed(1)} s; their column-major blocks of ${COLUMN_BLOCK} rows (means, maxima, argmax) in ${transposed.toFixed(1)} s.`,
  );
  log('');
  log('| query | median of 5, row-major files only | with the column-major blocks |');
  log('|---|---|---|');
  rowMajor.forEach(([what, ms], i) =>
    log(`| ${what} | ${ms.toFixed(1)} ms | ${blocked[i][1].toFixed(1)} ms |`),
  );
  log('');
  log(
    `RSS after these queries: ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB (the files are read in 4 MiB chunks, never whole).`,
  );
  log('');

  // 3. Retrieval: the engines side by side on the same collection, in this one run.
  const RUNS = Number(process.env.BENCH_RETRIEVAL_RUNS ?? 20);
  const spread = async (run: () => Promise<unknown>, runs = RUNS) => {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await run();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return { median: times[Math.floor(runs / 2)], p90: times[Math.min(runs - 1, Math.floor(runs * 0.9))] };
  };
  const manifestNow = (await store.manifest(id)) as CollectionManifest;
  const readerNow = new CollectionReader(store, manifestNow);
  const engines = [
    [
      'JavaScript loop over embeddings.f32 read per query (the previous code)',
      { memoryBytes: 0, engine: 'js', thread: false },
    ],
    ['onnxruntime Gemm over embeddings.f32 read per query', { memoryBytes: 0, engine: 'ort', thread: false }],
    [
      'JavaScript loop over the embeddings held in memory',
      { memoryBytes: 2 ** 30, engine: 'js', thread: false },
    ],
  ] as const;
  // The service's engine (its settings: the thread, COLLECTION_SEARCH_BYTES), started cold.
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  await queries.searchByEmbedding(id, text, 12);
  const cold = performance.now() - t0;
  const rssLoaded = process.memoryUsage().rss;
  const texts = Array.from({ length: RUNS }, () => new Float32Array(D).map(() => Math.random() - 0.5));
  let next = 0;
  const serviceRow: [string, { median: number; p90: number }] = [
    '**the service: the embeddings held in memory, screened by 8-bit codes (onnxruntime MatMulInteger), the candidates scored exactly, on the retrieval thread**',
    await spread(() => queries.searchByEmbedding(id, texts[next++ % RUNS], 12)),
  ];
  const rows: [string, { median: number; p90: number }][] = [];
  for (const [what, options] of engines) {
    const search = new CollectionSearch(options);
    await search.search(readerNow, { by: 'embedding', embedding: text }, 12); // loads, when it keeps
    rows.push([
      what,
      await spread(() => search.search(readerNow, { by: 'embedding', embedding: text }, 12), 5),
    ]);
    await search.close();
  }
  {
    // onnxruntime's Float32 product over the same rows in memory, without the screen (nor the top k).
    const all = new Float32Array(N * D);
    await readerNow.scan(FILES.embeddings, (chunk, start) => all.set(chunk, start * D));
    const product = await OrtProduct.create(all, N, D, 1);
    await product.multiply([text]);
    rows.push([
      'onnxruntime Gemm (Float32) over the embeddings held in memory, the product alone',
      await spread(() => product.multiply([texts[next++ % RUNS]]), 5),
    ]);
    await product.release();
  }
  rows.push(serviceRow);
  const neuronRows: [string, { median: number; p90: number }][] = [
    [
      'neuron 7 by mean (columns), top 12',
      await spread(() => queries.retrieve(id, { by: 'neuron', neuron: 7, activation: 'mean' }, 12)),
    ],
    [
      'neuron 7 by max (columns), top 12',
      await spread(() => queries.retrieve(id, { by: 'neuron', neuron: 7, activation: 'max' }, 12)),
    ],
  ];
  const sparse = new Float32Array(C);
  for (let j = 0; j < 8; j++) sparse[(j * 331) % C] = Math.random() - 0.5;
  const dense = new Float32Array(C).map(() => Math.random() - 0.5);
  // The first dense direction loads the means' 8-bit codes on the retrieval thread.
  const coldDense = performance.now();
  await queries.retrieve(id, { by: 'direction', direction: dense, score: 'dot' }, 12);
  const coldDenseMs = performance.now() - coldDense;
  const rssCodes = process.memoryUsage().rss;
  const denses = Array.from({ length: RUNS }, () => new Float32Array(C).map(() => Math.random() - 0.5));
  let nextDense = 0;
  neuronRows.push(
    [
      'a sparse direction (8 neurons), dot product: 8 columns',
      await spread(() => queries.retrieve(id, { by: 'direction', direction: sparse, score: 'dot' }, 12), 5),
    ],
    [
      `a dense direction (${C.toLocaleString('en')} neurons), dot product: the 8-bit screen of the means' codes held in memory, the candidates read from means.f32 and scored exactly`,
      await spread(() =>
        queries.retrieve(id, { by: 'direction', direction: denses[nextDense++ % RUNS], score: 'dot' }, 12),
      ),
    ],
    [
      `a dense direction, cosine: the same screen`,
      await spread(() =>
        queries.retrieve(id, { by: 'direction', direction: denses[nextDense++ % RUNS], score: 'cosine' }, 12),
      ),
    ],
  );
  const rssAfter = process.memoryUsage().rss;
  log(`## Retrieval over the same ${N.toLocaleString('en')} images (one run; median and p90)`);
  log('');
  log('| text retrieval, top 12 (given the text embedding) | median | p90 |');
  log('|---|---|---|');
  for (const [what, { median: m, p90 }] of rows)
    log(`| ${what} | ${m.toFixed(1)} ms | ${p90.toFixed(1)} ms |`);
  log('');
  log(
    `The service's first query: ${cold.toFixed(0)} ms (the thread starts, reads ${((N * D * 4) / 2 ** 20).toFixed(0)} MiB of embeddings and makes their 8-bit codes); later queries read only rows added since.`,
  );
  log('');
  log('| other searches (POST /v1/collections/{id}/search), top 12 | median | p90 |');
  log('|---|---|---|');
  for (const [what, { median: m, p90 }] of neuronRows)
    log(`| ${what} | ${m.toFixed(1)} ms | ${p90.toFixed(1)} ms |`);
  log('');
  log(
    `The first dense direction: ${coldDenseMs.toFixed(0)} ms (reads ${((N * C * 4) / 2 ** 20).toFixed(0)} MiB of neuron means and makes their 8-bit codes, ${((N * (C + 16)) / 2 ** 20).toFixed(0)} MiB held).`,
  );
  log('');
  log(
    `RSS: ${(rssBefore / 2 ** 20).toFixed(0)} MiB before the service's first search, ${(rssLoaded / 2 ** 20).toFixed(0)} MiB with the collection's embeddings loaded, ${(rssCodes / 2 ** 20).toFixed(0)} MiB with the means' codes too, ${(rssAfter / 2 ** 20).toFixed(0)} MiB after every search above (the comparison engines' own copies included, until collected; goal: at most 1,536 MiB).`,
  );
  await queries.stop();
  await mkdir(path.join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(path.join(REPO_ROOT, 'bench', 'results', 'collections.md'), lines.join('\n') + '\n');
} finally {
  await rm(tmp, { recursive: true, force: true });
}
