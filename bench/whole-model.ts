/**
 * What whole-model work costs (issue 23; `npm run bench -- whole-model`, results in
 * bench/results/whole-model-<model>.md):
 *
 *   npx tsx bench/whole-model.ts MODEL_DIR        (a random-weight RN50-x4: bench/export-rn50x4.sh, KEEP=1)
 *
 * The four jobs a user runs over a whole model, each measured on a slice and extrapolated:
 * 1. Per core (a child process pinned to one core with `taskset -c 0`, onnxruntime on one intra-op
 *    thread): the word index (buildWordIndex over BENCH_WORDS words, rastered, trunk, reduced,
 *    written), and labelling every neuron as src/evidence/service.ts computes a collection's view:
 *    the text-side index (W·t/|t| and t of each concept under the speaking templates, through the
 *    model's chained text + Gemm run), each top image's softmax over the concepts (its embedding
 *    against every concept's, the service's loop), and the soft-WPMI of every neuron
 *    (logGivenOfTop, wpmiOfLogGiven). CPU seconds per item are the figure: on shared cores they
 *    say what one core spends, whatever share of it this process got.
 * 2. Through the queue (BullMQ on a throwaway Redis, the jobs submitted to an in-process app that
 *    works none itself, WORKER_IN_PROCESS=false): a collection build of BENCH_IMAGES PNGs and
 *    BENCH_SEARCHES maximal-text searches (BENCH_SEARCH_STEPS steps of 64 candidates, one restart;
 *    the first search of the run embeds the whole vocabulary, once for the model, and shares it
 *    through DATA_DIR: src/search/vocabulary.ts), worked by one `src/bin/worker.ts` process
 *    pinned to core 0, then by two pinned to cores 0 and 1 (each ORT_INTRA_OP_THREADS=1, one job at
 *    a time; BENCH_QUEUE_PASSES=1,2,1 adds a second pass of one): the speed-up of two over one is
 *    the wall time of one over that of two. Then (BENCH_LABELS=1, the default) the whole-model
 *    labelling job on the pass's collection: every neuron of the model, in shards of
 *    NEURON_LABEL_SHARD (64) that every worker takes, each worker computing the collection's view
 *    (soft-WPMI over the text-side index of the 20,000 words and the categories) once; the index's
 *    word rows are split between the workers in chunk files (src/evidence/shared-text-rows.ts).
 *    The shared cache is flushed and those files removed first, so that no pass reads another's. Maximal text is extrapolated from part 1's pieces (the
 *    vocabulary pass, once per model; a neuron's candidate pool over the vocabulary's embeddings,
 *    measured on the slice's embeddings tiled to the vocabulary's size; the steps), checked
 *    against the queued searches' CPU time.
 *
 * The cores are shared with whatever else runs: the load average is recorded at every step.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { buildApp, type App } from '../src/app.js';
import { ClipModel } from '../src/clip/clip-model.js';
import { loadModelDirectory } from '../src/clip/model-directory.js';
import { loadConfig } from '../src/config.js';
import { rankedPool } from '../src/search/candidate-pool.js';
import { POOL_KEEP } from '../src/search/max-text.js';
import { neuronProjection } from '../src/search/objective.js';
import { textFunctions } from '../src/search/token-text.js';
import { scoreRows, vocabularyRows } from '../src/search/vocabulary.js';
import { logGivenOfTop, SOFT_WPMI_DEFAULTS, wpmiOfLogGiven } from '../src/evidence/dissect.js';
import { SPEAKING_TEMPLATES } from '../src/evidence/text-index.js';
import { buildWordIndex } from '../src/words/index-builder.js';
import { IndexStore } from '../src/words/index-store.js';
import { modelRenderer } from '../src/words/render.js';
import { defaultWords, makeVocabulary } from '../src/words/vocabulary.js';
import { ROOT, sleep, spawnOwned, startRedis, stopProcess } from './lib/processes.js';

const WORDS = Number(process.env.BENCH_WORDS ?? 48);
const CONCEPTS = Number(process.env.BENCH_CONCEPTS ?? 64);
const PROBABILITY_IMAGES = Number(process.env.BENCH_PROBABILITY_IMAGES ?? 8);
const WPMI_NEURONS = Number(process.env.BENCH_WPMI_NEURONS ?? 64);
const IMAGES = Number(process.env.BENCH_IMAGES ?? 48);
const POOL_ROWS = Number(process.env.BENCH_POOL_ROWS ?? 1024);
const STEP_SAMPLES = Number(process.env.BENCH_STEPS ?? 8);
const POOL_NEURONS = Number(process.env.BENCH_POOL_NEURONS ?? 8);
const SEARCHES = Number(process.env.BENCH_SEARCHES ?? 0);
const SEARCH_STEPS = Number(process.env.BENCH_SEARCH_STEPS ?? 4);
/** 0: no labelling job in the queue passes. */
const LABELS = process.env.BENCH_LABELS !== '0';
/** Worker processes per queue pass, in order (one, two: the speed-up of two over one). */
const QUEUE_PASSES = (process.env.BENCH_QUEUE_PASSES ?? '1,2').split(',').map(Number);
const SEARCH_BATCH = 64;

/** The whole model's work, as the issue counts it. */
const WHOLE = { words: 20_000, images: 10_000, neurons: 2_560, categories: 10 };

const loadAverage = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
const cpuSeconds = () => {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1e6;
};
/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Measured {
  what: string;
  items: number;
  wall: number;
  cpu: number;
}

// ---------------------------------------------------------------------------------------------
// Part 1, in a child pinned to one core: prints its measurements as one JSON line.

async function perCore(modelDir: string): Promise<Measured[]> {
  const config = { ...loadConfig(), modelDir, executionProviders: ['cpu' as const], intraOpThreads: 1 };
  const model = await ClipModel.load(modelDir, config); // the default micro-batch (BATCH_MAX_SIZE), as the service and worker
  const C = model.neuronCount;
  const D = model.embedDim;
  const out: Measured[] = [];
  const timed = async (what: string, items: number, work: () => Promise<unknown>) => {
    const [wall0, cpu0] = [performance.now(), cpuSeconds()];
    await work();
    out.push({ what, items, wall: (performance.now() - wall0) / 1000, cpu: cpuSeconds() - cpu0 });
    console.error(`${what}: ${items} in ${out.at(-1)!.wall.toFixed(1)} s (load ${loadAverage()})`);
  };

  // The word index: the first WORDS words of the default vocabulary (after a warm-up batch).
  const words = (await defaultWords()).slice(0, WORDS + 8);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-whole-words-'));
  const build = async (list: string[]) => {
    const vocabulary = makeVocabulary(list, 'custom');
    const store = new IndexStore(path.join(tmp, vocabulary.sha256), model.sha256, vocabulary.sha256);
    await buildWordIndex({
      model,
      vocabulary,
      store,
      render: modelRenderer(model),
      batchSize: 8,
      lexical: false,
    });
  };
  await build(words.slice(WORDS));
  await timed('word index (render, trunk, reduce, write)', WORDS, () => build(words.slice(0, WORDS)));
  await rm(tmp, { recursive: true, force: true });

  // Maximal text, 1: the vocabulary's embeddings, every token alone ([start, v, end]), as
  // src/search/vocabulary.ts computes them once per model; a slice of the vocabulary's rows.
  const { startId, endId, vocabSize } = model.tokenizer;
  const poolRows = Array.from({ length: POOL_ROWS }, (_, i) => [
    startId,
    (i * 7919) % (vocabSize - 2),
    endId,
  ]);
  await model.embedTokenRows(poolRows.slice(0, 64));
  let slice: Float32Array[] = [];
  await timed('maximal text: the vocabulary pass, rows of 3 tokens', POOL_ROWS, async () => {
    slice = await model.embedTokenRows(poolRows);
  });
  // Maximal text, 2: what each search does with them, its candidate pool: u·t_v/|t_v| over the
  // whole vocabulary, ranked, the best 1,024 tokens that are their own encoding (the slice's
  // embeddings tiled to the vocabulary's size; the own-encoding memo filled first, once per process).
  const tiled = new Float32Array(vocabSize * D);
  for (let id = 0; id < vocabSize; id++) tiled.set(slice[id % slice.length], id * D);
  const vocabulary = vocabularyRows(tiled, vocabSize, D, 'computed');
  const { isOwnEncoding, ownEncodings } = textFunctions(model.tokenizer);
  await timed('maximal text: own encodings of the vocabulary (BPE), once per process', 1, async () =>
    ownEncodings(),
  );
  const excluded = new Set([startId, endId]);
  await timed(
    "maximal text: a neuron's candidate pool over the vocabulary's embeddings",
    POOL_NEURONS,
    async () => {
      for (let n = 0; n < POOL_NEURONS; n++) {
        const u = neuronProjection(model.bilinear, (n * 331) % C, D);
        rankedPool(scoreRows(vocabulary, u, [startId, endId]), excluded, isOwnEncoding, POOL_KEEP);
      }
    },
  );
  // Maximal text, 2: hill-climb steps, a batch of 64 candidates of 6 tokens each (8 with start and end).
  const stepRows = Array.from({ length: SEARCH_BATCH }, (_, r) => [
    startId,
    ...Array.from({ length: 6 }, (_, j) => (r * 131 + j * 977) % (vocabSize - 2)),
    endId,
  ]);
  await model.embedTokenRows(stepRows);
  await timed(
    `maximal text: hill-climb steps of ${SEARCH_BATCH} candidates × 8 tokens`,
    STEP_SAMPLES,
    async () => {
      for (let i = 0; i < STEP_SAMPLES; i++) await model.embedTokenRows(stepRows);
    },
  );

  // Labelling, 1: the text-side index, one chained text + W·t run per concept and template.
  const concepts = words.slice(0, CONCEPTS);
  const rows = concepts.flatMap((word) =>
    SPEAKING_TEMPLATES.map((template) => model.tokenizer.encode(template.replace('{}', word)).ids),
  );
  await model.textAttributions(rows.slice(0, 8));
  await timed(`text-side index (${SPEAKING_TEMPLATES.length} templates per concept)`, CONCEPTS, () =>
    model.textAttributions(rows),
  );

  // Labelling, 2: a top image's softmax over the S concepts (the loop of computeView), for S of
  // the whole vocabulary and the categories.
  const S = WHOLE.words + WHOLE.categories;
  const texts = Float32Array.from({ length: S * D }, (_, i) => Math.sin(i * 0.37));
  const image = Float32Array.from({ length: D }, (_, i) => Math.cos(i * 0.11));
  const probabilities: Float64Array[] = [];
  await timed(
    `a top image's softmax over ${S.toLocaleString('en')} concepts`,
    PROBABILITY_IMAGES,
    async () => {
      for (let r = 0; r < PROBABILITY_IMAGES; r++)
        probabilities.push(softmaxOverConcepts(image, texts, S, D));
    },
  );

  // Labelling, 3: the soft-WPMI of WPMI_NEURONS neurons (m top images each) over the S concepts.
  const m = SOFT_WPMI_DEFAULTS.topK;
  const top = Array.from({ length: C }, (_, c) =>
    Array.from({ length: m }, (_, j) => (c + j) % PROBABILITY_IMAGES),
  );
  const logGiven = new Float64Array(C * S);
  await timed('soft-WPMI, log p(concept | top images)', WPMI_NEURONS, async () =>
    logGivenOfTop(top, (i) => probabilities[i]!, S, SOFT_WPMI_DEFAULTS, 0, WPMI_NEURONS, logGiven),
  );
  await timed('soft-WPMI over all neurons (wpmiOfLogGiven, C × S)', C, async () =>
    wpmiOfLogGiven(logGiven, C, S, SOFT_WPMI_DEFAULTS),
  );
  await model.release();
  return out;
}

/** P[s] = softmax(a · cos(image, text_s)), as EvidenceService.computeView computes it per top image. */
function softmaxOverConcepts(image: Float32Array, texts: Float32Array, S: number, D: number): Float64Array {
  let norm = 0;
  for (let d = 0; d < D; d++) norm += image[d] ** 2;
  norm = Math.sqrt(norm) || 1;
  const logits = new Float64Array(S);
  let max = -Infinity;
  for (let s = 0; s < S; s++) {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += image[d] * texts[s * D + d];
    logits[s] = (SOFT_WPMI_DEFAULTS.a * dot) / norm;
    max = Math.max(max, logits[s]);
  }
  let sum = 0;
  for (let s = 0; s < S; s++) sum += logits[s] = Math.exp(logits[s] - max);
  for (let s = 0; s < S; s++) logits[s] /= sum;
  return logits;
}

// ---------------------------------------------------------------------------------------------
// Part 2: the queue, one worker process vs two.

async function picture(i: number): Promise<Buffer> {
  const hue = (i * 37) % 360;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240">
    <rect width="100%" height="100%" fill="hsl(${hue},60%,50%)"/>
    <circle cx="${60 + (i % 200)}" cy="120" r="${30 + (i % 50)}" fill="hsl(${(hue + 180) % 360},70%,50%)"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

function multipart(pngs: Buffer[]): { payload: Buffer; headers: Record<string, string> } {
  const boundary = 'whole-model-boundary';
  const chunks: Buffer[] = [];
  for (const [i, png] of pngs.entries()) {
    chunks.push(
      Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="category"\r\n\r\nc${i % 10}\r\n`),
      Buffer.from(
        `--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="${i}.png"\r\ncontent-type: image/png\r\n\r\n`,
      ),
      png,
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    payload: Buffer.concat(chunks),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  };
}

interface Worker {
  child: ChildProcess;
  ready: Promise<void>;
}

function startWorker(core: number, env: NodeJS.ProcessEnv): Worker {
  const child = spawnOwned(
    'taskset',
    ['-c', String(core), process.execPath, '--import', 'tsx', path.join(ROOT, 'src/bin/worker.ts')],
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const ready = new Promise<void>((resolve, reject) => {
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      if (buffer.includes('"worker ready"')) resolve();
      if (buffer.length > 100_000) buffer = buffer.slice(-10_000);
    });
    child.once('exit', (code) => reject(new Error(`worker exited (${code}) before it was ready`)));
  });
  return { child, ready };
}

async function finished(
  app: App,
  jobId: string,
): Promise<{ state: string; result?: unknown; error?: string }> {
  for (;;) {
    const view = (await app.inject({ url: `/v1/jobs/${jobId}` })).json() as { state: string; error?: string };
    if (['completed', 'failed', 'cancelled'].includes(view.state)) {
      if (view.state !== 'completed') throw new Error(`job ${jobId} ${view.state}: ${view.error ?? ''}`);
      return view;
    }
    await sleep(250);
  }
}

interface QueuePass {
  workers: number;
  build: { wall: number; cpu: number };
  /** Absent with BENCH_SEARCHES=0. */
  search?: { wall: number; cpu: number };
  /** The labelling job on the pass's collection; absent with BENCH_LABELS=0. */
  labels?: { wall: number; cpu: number; neurons: number; shards: number };
  load: string;
}

async function queuePass(
  app: App,
  workerCount: number,
  pass: number,
  env: NodeJS.ProcessEnv,
  pngs: Buffer[],
): Promise<QueuePass> {
  const workers = Array.from({ length: workerCount }, (_, core) => startWorker(core, env));
  try {
    await Promise.all(workers.map((worker) => worker.ready));
    const cpu = () => workers.reduce((sum, worker) => sum + processCpuSeconds(worker.child.pid!), 0);
    // The collection build: its shards are jobs that every worker takes.
    const name = `whole-${pass}-${workerCount}`;
    const created = await app.inject({ method: 'POST', url: '/v1/collections', payload: { name } });
    if (created.statusCode !== 201) throw new Error(created.body);
    let [wall0, cpu0] = [performance.now(), cpu()];
    const sent = await app.inject({
      method: 'POST',
      url: `/v1/collections/${name}/images`,
      ...multipart(pngs),
    });
    if (sent.statusCode !== 202) throw new Error(sent.body);
    await finished(app, (sent.json() as { jobId: string }).jobId);
    const build = { wall: (performance.now() - wall0) / 1000, cpu: cpu() - cpu0 };
    console.error(
      `${workerCount} worker(s), pass ${pass}: build ${build.wall.toFixed(1)} s (load ${loadAverage()})`,
    );
    const labels = LABELS ? await labelling(app, env.DATA_DIR!, name, workerCount, pass, cpu) : undefined;
    if (SEARCHES === 0) return { workers: workerCount, build, labels, load: loadAverage() };
    // Maximal-text searches, one job per neuron (new neurons every pass: no cached result).
    [wall0, cpu0] = [performance.now(), cpu()];
    const ids = await Promise.all(
      Array.from({ length: SEARCHES }, async (_, i) => {
        const response = await app.inject({
          method: 'POST',
          url: '/v1/search/max-text',
          payload: {
            neuron: pass * 100 + workerCount * 10 + i,
            steps: SEARCH_STEPS,
            batch: SEARCH_BATCH,
            restarts: 1,
            timeLimitS: 600,
          },
        });
        if (response.statusCode !== 202) throw new Error(response.body);
        return (response.json() as { jobId: string }).jobId;
      }),
    );
    for (const id of ids) await finished(app, id);
    const search = { wall: (performance.now() - wall0) / 1000, cpu: cpu() - cpu0 };
    console.error(
      `${workerCount} worker(s), pass ${pass}: searches ${search.wall.toFixed(1)} s (load ${loadAverage()})`,
    );
    return { workers: workerCount, build, search, labels, load: loadAverage() };
  } finally {
    await Promise.all(workers.map((worker) => stopProcess(worker.child, 'SIGTERM', 15_000)));
  }
}

/**
 * The whole-model labelling job on a collection (POST /v1/neurons/labels), worked by the pass's
 * workers: the shared cache is flushed and the shared text-side rows (DATA_DIR/text-index) removed
 * first, so that every pass computes the text-side index.
 */
async function labelling(
  app: App,
  dataDir: string,
  collection: string,
  workerCount: number,
  pass: number,
  cpu: () => number,
): Promise<{ wall: number; cpu: number; neurons: number; shards: number }> {
  await app.cache.flush();
  await rm(path.join(dataDir, 'text-index'), { recursive: true, force: true });
  const [wall0, cpu0] = [performance.now(), cpu()];
  const response = await app.inject({ method: 'POST', url: '/v1/neurons/labels', payload: { collection } });
  if (response.statusCode !== 202) throw new Error(response.body);
  const view = await finished(app, (response.json() as { jobId: string }).jobId);
  const result = view.result as { neurons: number };
  const progress = (view as { progress?: { shards?: { total: number } } }).progress;
  const measured = {
    wall: (performance.now() - wall0) / 1000,
    cpu: cpu() - cpu0,
    neurons: result.neurons,
    shards: progress?.shards?.total ?? 0,
  };
  console.error(
    `${workerCount} worker(s), pass ${pass}: labelling ${measured.neurons} neurons ${measured.wall.toFixed(1)} s (load ${loadAverage()})`,
  );
  return measured;
}

/**
 * The run's first search, by one worker on the fresh DATA_DIR: it embeds the vocabulary and writes
 * DATA_DIR/max-text/ for every later worker (what a whole-model run pays once), so that the passes
 * compare searches in the state the rest of a whole-model run is in.
 */
async function firstSearch(app: App, env: NodeJS.ProcessEnv): Promise<{ wall: number; cpu: number }> {
  const worker = startWorker(0, env);
  try {
    await worker.ready;
    const [wall0, cpu0] = [performance.now(), processCpuSeconds(worker.child.pid!)];
    const response = await app.inject({
      method: 'POST',
      url: '/v1/search/max-text',
      payload: { neuron: 0, steps: SEARCH_STEPS, batch: SEARCH_BATCH, restarts: 1, timeLimitS: 600 },
    });
    if (response.statusCode !== 202) throw new Error(response.body);
    await finished(app, (response.json() as { jobId: string }).jobId);
    const measured = {
      wall: (performance.now() - wall0) / 1000,
      cpu: processCpuSeconds(worker.child.pid!) - cpu0,
    };
    console.error(
      `the first search (embeds the vocabulary): ${measured.wall.toFixed(1)} s (load ${loadAverage()})`,
    );
    return measured;
  } finally {
    await stopProcess(worker.child, 'SIGTERM', 15_000);
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((arg) => arg !== '--');
  if (args[0] === '--per-core') {
    console.log(JSON.stringify(await perCore(path.resolve(args[1]!))));
    return;
  }
  const modelDir = path.resolve(args[0] ?? process.env.MODEL_DIR ?? path.join(ROOT, 'models/toyworld'));
  const { manifest } = await loadModelDirectory(modelDir);
  const started = new Date();
  const loadBefore = loadAverage();

  console.error(`per core: taskset -c 0, ORT intra-op threads 1 (load ${loadBefore})`);
  const perCoreOut = execFileSync(
    'taskset',
    ['-c', '0', process.execPath, '--import', 'tsx', 'bench/whole-model.ts', '--per-core', modelDir],
    { cwd: ROOT, env: { ...process.env, ORT_INTRA_OP_THREADS: '1' }, stdio: ['ignore', 'pipe', 'inherit'] },
  ).toString();
  const core = JSON.parse(perCoreOut.trim().split('\n').at(-1)!) as Measured[];

  const redis = await startRedis();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bench-whole-'));
  const env = {
    ...process.env,
    MODEL_DIR: modelDir,
    REDIS_URL: redis.url,
    DATA_DIR: dataDir,
    ORT_PROVIDERS: 'cpu',
    ORT_INTRA_OP_THREADS: '1',
    WORKER_CONCURRENCY: '1',
    WORKER_COLLECTION_CONCURRENCY: '1',
    COLLECTION_SHARD: String(Math.max(1, Math.ceil(IMAGES / 8))),
    COLLECTION_BATCH: '8',
    WORKER_LOCK_MS: '60000',
    LOG_LEVEL: 'warn',
  };
  const saved = { ...process.env };
  Object.assign(process.env, env, {
    WORKER_IN_PROCESS: 'false',
    WORD_INDEX_AUTOBUILD: 'false',
    WARM_DEFAULT_FIT: 'false',
    COLLECTION_PROBE: 'false',
    RATE_LIMIT_PER_MINUTE: '10000000',
  });
  const app = await buildApp({ config: loadConfig(), logger: false });
  await app.ready();
  process.env = saved;
  const pngs = await Promise.all(Array.from({ length: IMAGES }, (_, i) => picture(i)));
  const passes: QueuePass[] = [];
  let first: { wall: number; cpu: number } | undefined;
  try {
    if (SEARCHES > 0) first = await firstSearch(app, env);
    for (const [pass, workers] of QUEUE_PASSES.entries())
      passes.push(await queuePass(app, workers, pass, env, pngs));
  } finally {
    await app.close();
    await redis.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  report(manifest.name, manifest.vocab_size, modelDir, started, loadBefore, core, passes, first);
}

function report(
  model: string,
  vocabSize: number,
  modelDir: string,
  started: Date,
  loadBefore: string,
  core: Measured[],
  passes: QueuePass[],
  first: { wall: number; cpu: number } | undefined,
): void {
  const one = passes.filter((pass) => pass.workers === 1);
  const two = passes.find((pass) => pass.workers === 2)!;
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  const oneBuild = mean(one.map((pass) => pass.build.wall));
  const oneSearch = SEARCHES ? mean(one.map((pass) => pass.search!.wall)) : NaN;
  const oneBuildCpu = mean(one.map((pass) => pass.build.cpu));
  const hours = (seconds: number) => (seconds / 3600).toFixed(seconds < 360 ? 2 : 1);
  const per = (what: string) => core.find((m) => m.what.startsWith(what))!;
  const cpuPer = (m: Measured) => m.cpu / m.items;
  const wallPer = (m: Measured) => m.wall / m.items;

  // The whole model's jobs, per core (CPU seconds per item × items).
  const words = per('word index');
  const textSide = per('text-side index');
  const softmax = per("a top image's softmax");
  const logGiven = per('soft-WPMI, log');
  const wpmi = per('soft-WPMI over all');
  const buildPerImage = oneBuildCpu / IMAGES;
  const poolRow = cpuPer(per('maximal text: the vocabulary pass'));
  const pool = cpuPer(per("maximal text: a neuron's candidate pool"));
  const step = cpuPer(per('maximal text: hill-climb'));
  const vocabularyRows = vocabSize - 2;
  const defaultSteps = 200 * 3;
  /** Once per model (then read from DATA_DIR by every worker process). */
  const vocabularyPass = vocabularyRows * poolRow;
  const perNeuron = pool + defaultSteps * step;
  const maximalText = vocabularyPass + perNeuron * WHOLE.neurons;
  // The queue's searches against the same pieces: the first search (it embeds the vocabulary), and
  // the passes' searches of SEARCH_STEPS steps (the vocabulary read from DATA_DIR), predicted: the
  // pool and steps of each, and the own-encoding pass once per worker process (each worker's read
  // of the file is not in the prediction).
  const ownEncodings = per('maximal text: own encodings').cpu;
  const firstPredicted = vocabularyPass + ownEncodings + pool + SEARCH_STEPS * step;
  const searchJobPredicted = pool + SEARCH_STEPS * step + ownEncodings / SEARCHES;
  const searchJobMeasured = SEARCHES ? mean(one.map((pass) => pass.search!.cpu)) / SEARCHES : NaN;
  const topImages = Math.min(WHOLE.images, WHOLE.neurons * SOFT_WPMI_DEFAULTS.topK);
  const oneLabels = LABELS ? mean(one.map((pass) => pass.labels!.wall)) : NaN;
  const oneLabelsCpu = LABELS ? mean(one.map((pass) => pass.labels!.cpu)) : NaN;
  // Labelling: with the queued job, its one-worker CPU (every neuron, the whole concept list, on
  // the IMAGES-image collection) plus the softmax of the top images a 10,000-image collection adds;
  // without it, the slices' pieces.
  const labelling = LABELS
    ? oneLabelsCpu + cpuPer(softmax) * Math.max(0, topImages - IMAGES)
    : cpuPer(textSide) * (WHOLE.words + WHOLE.categories) +
      cpuPer(softmax) * topImages +
      cpuPer(logGiven) * WHOLE.neurons +
      wpmi.cpu;
  const speedBuild = oneBuild / two.build.wall;
  const speedLabels = LABELS ? oneLabels / two.labels!.wall : NaN;
  const labelJob = one[0]?.labels;
  const speedSearch = SEARCHES ? oneSearch / two.search!.wall : NaN;
  const rows = [
    [
      `word index, ${WHOLE.words.toLocaleString('en')} words`,
      `${WORDS} words: ${cpuPer(words).toFixed(3)} s CPU per word (wall ${wallPer(words).toFixed(3)} s)`,
      hours(cpuPer(words) * WHOLE.words),
      'not a queue job: `npm run index-words` or the server, one process',
    ],
    [
      `collection build, ${WHOLE.images.toLocaleString('en')} images (320 × 240 PNGs)`,
      `${IMAGES} images through the queue, one worker: ${buildPerImage.toFixed(3)} s CPU per image (wall ${(oneBuild / IMAGES).toFixed(3)} s)`,
      hours(buildPerImage * WHOLE.images),
      `${speedBuild.toFixed(2)}× (${oneBuild.toFixed(1)} s → ${two.build.wall.toFixed(1)} s)`,
    ],
    [
      `maximal text, ${WHOLE.neurons.toLocaleString('en')} neurons (default search: 3 restarts × 200 steps × 64 candidates)`,
      `the vocabulary pass once per model, ${vocabularyPass.toFixed(1)} s (${vocabularyRows.toLocaleString('en')} rows of 3 tokens, ${(poolRow * 1000).toFixed(2)} ms each), + per neuron: its candidate pool ${pool.toFixed(3)} s + ${defaultSteps} steps × ${step.toFixed(3)} s = ${perNeuron.toFixed(0)} s CPU${first ? `; queued searches of ${SEARCH_STEPS} steps: the first (it embeds the vocabulary) ${first.cpu.toFixed(1)} s CPU measured, ${firstPredicted.toFixed(1)} s predicted from these; then, one worker, ${searchJobMeasured.toFixed(1)} s each measured, ${searchJobPredicted.toFixed(1)} s predicted (each worker process also reads the file once)` : ''}`,
      hours(maximalText),
      SEARCHES
        ? `${speedSearch.toFixed(2)}× (${oneSearch.toFixed(1)} s → ${two.search!.wall.toFixed(1)} s; the vocabulary's embeddings read from DATA_DIR by each worker)`
        : "not measured in this run (BENCH_SEARCHES=0); one job per neuron on the search lane, as independent as the build's shards, once the vocabulary's embeddings are in DATA_DIR",
    ],
    [
      `labelling every neuron (soft-WPMI over ${WHOLE.words.toLocaleString('en')} words + ${WHOLE.categories} categories, a ${WHOLE.images.toLocaleString('en')}-image collection)`,
      `${LABELS ? `the job through the queue, one worker: ${oneLabelsCpu.toFixed(1)} s CPU for all ${(one[0]?.labels?.neurons ?? 0).toLocaleString('en')} neurons on the ${IMAGES}-image collection, + ${cpuPer(softmax).toFixed(3)} s per further top image (≤ ${topImages.toLocaleString('en')} on a larger collection). Pieces: ` : ''}text-side index ${cpuPer(textSide).toFixed(3)} s per concept (short words; the job's words are longer); ${cpuPer(softmax).toFixed(3)} s per top image; log p ${cpuPer(logGiven).toFixed(4)} s per neuron; WPMI ${wpmi.cpu.toFixed(1)} s in all`,
      hours(labelling),
      LABELS && labelJob
        ? `${speedLabels.toFixed(2)}× (${oneLabels.toFixed(1)} s → ${two.labels!.wall.toFixed(1)} s for the job over all ${labelJob.neurons.toLocaleString('en')} neurons on the ${IMAGES}-image collection, in ${labelJob.shards} shards; one worker: ${oneLabelsCpu.toFixed(1)} s of CPU; the text-side index's word rows split between the workers in chunk files, each worker computing the rest of the collection's view once)`
        : 'not measured in this run (BENCH_LABELS=0)',
    ],
  ];
  const markdown = [
    `# What whole-model work costs: ${model}`,
    '',
    `Run ${started.toISOString()} – ${new Date().toISOString()} on ${os.cpus().length} cores shared with other work`,
    `(load average before ${loadBefore}, after ${loadAverage()}: the machine is loaded by others; CPU seconds per`,
    'item are the figure for a core, wall-clock ratios are from passes of this run). Model directory',
    `\`${modelDir.startsWith(ROOT) ? path.relative(ROOT, modelDir) : modelDir}\`.`,
    '',
    '## Per core, extrapolated to the whole model',
    '',
    '| job | slice measured | core-hours | two worker processes vs one (wall, same 2 cores) |',
    '|---|---|---|---|',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
    `| all four | | ${hours(cpuPer(words) * WHOLE.words + buildPerImage * WHOLE.images + maximalText + labelling)} | |`,
    '',
    '## Per-core slices (a process pinned to core 0 by `taskset -c 0`, one onnxruntime thread)',
    '',
    '| what | items | wall s | CPU s | CPU s per item |',
    '|---|---|---|---|---|',
    ...core.map(
      (m) =>
        `| ${m.what} | ${m.items} | ${m.wall.toFixed(2)} | ${m.cpu.toFixed(2)} | ${cpuPer(m).toFixed(4)} |`,
    ),
    '',
    `## The queue: ${IMAGES}-image build (shards of ${Math.max(1, Math.ceil(IMAGES / 8))}, batch 8)${LABELS ? ', the labelling job on it (the shared cache and text rows cleared first)' : ''} and ${SEARCHES} searches of ${SEARCH_STEPS} steps × ${SEARCH_BATCH}, one restart, after the run's first search${first ? ` (${first.wall.toFixed(1)} s wall, ${first.cpu.toFixed(1)} s CPU, one worker)` : ''}, which embeds the vocabulary for all of them (DATA_DIR/max-text)`,
    '',
    'BullMQ on a throwaway Redis; `src/bin/worker.ts` processes pinned with `taskset -c <core>`,',
    'ORT_INTRA_OP_THREADS=1, one job at a time per lane; the jobs submitted to an app in this process',
    `that works none itself. Passes in this order: ${QUEUE_PASSES.map((n) => (n === 1 ? 'one worker' : `${n} workers`)).join(', ')}.`,
    '',
    '| pass | workers | build wall s | build CPU s (workers) | labelling wall s | labelling CPU s (workers) | searches wall s | searches CPU s (workers) | load average after |',
    '|---|---|---|---|---|---|---|---|---|',
    ...passes.map(
      (pass, i) =>
        `| ${i + 1} | ${pass.workers} | ${pass.build.wall.toFixed(1)} | ${pass.build.cpu.toFixed(1)} | ${pass.labels?.wall.toFixed(1) ?? '—'} | ${pass.labels?.cpu.toFixed(1) ?? '—'} | ${pass.search?.wall.toFixed(1) ?? '—'} | ${pass.search?.cpu.toFixed(1) ?? '—'} | ${pass.load} |`,
    ),
    '',
    `Speed-up of two workers over one (one's passes averaged): build ${speedBuild.toFixed(2)}×${LABELS ? `, labelling ${speedLabels.toFixed(2)}×` : ''}${SEARCHES ? `, searches ${speedSearch.toFixed(2)}×` : ''}.`,
    '',
    `Reproduce: \`npx tsx bench/whole-model.ts MODEL_DIR\` (BENCH_WORDS=${WORDS}, BENCH_CONCEPTS=${CONCEPTS},`,
    `BENCH_PROBABILITY_IMAGES=${PROBABILITY_IMAGES}, BENCH_WPMI_NEURONS=${WPMI_NEURONS}, BENCH_IMAGES=${IMAGES},`,
    `BENCH_POOL_ROWS=${POOL_ROWS}, BENCH_POOL_NEURONS=${POOL_NEURONS}, BENCH_STEPS=${STEP_SAMPLES}, BENCH_SEARCHES=${SEARCHES}, BENCH_SEARCH_STEPS=${SEARCH_STEPS},`,
    `BENCH_QUEUE_PASSES=${QUEUE_PASSES.join(',')}, BENCH_LABELS=${LABELS ? 1 : 0}).`,
    '',
  ].join('\n');
  const file = path.join(ROOT, 'bench/results', `whole-model-${model}.md`);
  writeFileSync(process.env.OUT ?? file, markdown);
  console.log(markdown);
}

await main();
process.exit(0);
