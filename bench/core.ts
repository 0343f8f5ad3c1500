/**
 * Benchmark of the service core (`npm run bench` runs it; results in bench/results/core.md).
 *
 * In one run, on the same model (MODEL_DIR, default the embedded model):
 *   - text embeddings per second at batch 1 and 64, and images per second at batch 8, through
 *     the HTTP service vs a bare onnxruntime session: the ratio says what the service costs;
 *   - 256 concurrent single-text requests with and without micro-batching;
 *   - uncached attribution vectors per second through HTTP vs the bare text encoder;
 *   - cached attribution latency under autocannon at concurrency 32;
 *   - CPU-only steps against budgets (the bounds the tests used to assert): resizing a 1000×800
 *     picture to 288 px, loading CLIP's 49k merges, encoding short prompts; a step over its budget
 *     fails the run (exit 1).
 * MODEL_DIR picks the model: the embedded one by default (results in core.md); a larger one
 * (e.g. a random-weight RN50x4 export) writes core-<name>.md.
 * Every text is new to the service (numbered prompts), so nothing is answered from the cache
 * except in the cached-latency row.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import sharp from 'sharp';
import * as ort from 'onnxruntime-node';
import { buildApp, type App } from '../src/app.js';
import { loadConfig, REPO_ROOT, type Config } from '../src/config.js';
import { ClipModel } from '../src/clip/clip-model.js';
import { resizeShortestSide, type RgbImage } from '../src/clip/image.js';
import { ClipTokenizer } from '../src/clip/tokenizer.js';

const config: Config = {
  ...loadConfig(),
  executionProviders: ['cpu'],
  redisUrl: undefined,
  rateLimitPerMinute: 0,
  // The client shares this process: on a large model its own image preprocessing lags the event
  // loop, and back-pressure would answer 503 to the benchmark itself.
  maxEventLoopDelayMs: 0,
  logLevel: 'warn',
};
const run = promisify(execFile);
const WORDS = ['red', 'star', 'happy', 'circle', 'banana', 'blue', 'square', 'sleepy'];
let counter = 0;
const freshText = () => `a photo of a ${WORDS[counter % WORDS.length]} number ${counter++}`;

async function startService(overrides: Partial<Config> = {}): Promise<{ app: App; url: string }> {
  const app = await buildApp({ config: { ...config, ...overrides }, logger: false });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url: address };
}

async function timeIt(
  label: string,
  work: () => Promise<number>,
): Promise<{ label: string; perSecond: number }> {
  const started = performance.now();
  const items = await work();
  const seconds = (performance.now() - started) / 1000;
  return { label, perSecond: items / seconds };
}

async function post(url: string, body: unknown): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** The bare onnxruntime sessions, created exactly as the service creates them. */
async function bareSessions(model: ClipModel) {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    interOpNumThreads: config.interOpThreads,
  };
  const file = (name: string) => model.directory.path(name);
  return {
    text: await ort.InferenceSession.create(file('text.onnx'), options),
    trunk: await ort.InferenceSession.create(file('visual_trunk.onnx'), options),
    head: await ort.InferenceSession.create(file('visual_head.onnx'), options),
  };
}

function idsTensor(rows: number[][]): ort.Tensor {
  const length = Math.max(...rows.map((row) => row.length));
  const ids = new BigInt64Array(rows.length * length);
  rows.forEach((row, r) => row.forEach((id, i) => (ids[r * length + i] = BigInt(id))));
  return new ort.Tensor('int64', ids, [rows.length, length]);
}

/** CLIP's merges file (the shared copy beside the repository), for the tokenizer rows. */
const CLIP_MERGES = path.resolve(REPO_ROOT, '../shared/clip/bpe_simple_vocab_16e6.txt.gz');

/**
 * Steps that need no model, each against a budget generous enough for a busy shared machine (the
 * bounds test/image.test.ts and test/tokenizer.test.ts asserted before). Rows of a table, and
 * whether every step kept to its budget.
 */
async function budgetRows(): Promise<{ rows: string[]; within: boolean }> {
  const rows: string[] = [];
  let within = true;
  const row = (step: string, value: number, unit: string, budget: string, ok: boolean) => {
    within &&= ok;
    rows.push(
      `| ${step} | ${value.toFixed(unit === 'ms CPU' ? 1 : 0)} ${unit} | ${budget} | ${ok ? 'yes' : '**no**'} |`,
    );
  };

  // PIL-exact bicubic resize of the shorter side: CPU time per picture, after one warm-up.
  let state = 9;
  const data = new Uint8Array(1000 * 800 * 3).map(
    () => ((state = (state * 1103515245 + 12345) >>> 0) >>> 16) & 255,
  );
  const img: RgbImage = { width: 1000, height: 800, data };
  resizeShortestSide(img, 288);
  const start = process.cpuUsage();
  const runs = 5;
  for (let i = 0; i < runs; i++) resizeShortestSide(img, 288);
  const used = process.cpuUsage(start);
  const resizeMs = (used.user + used.system) / 1000 / runs;
  row('resize 1000×800 → 360×288 (bicubic, as PIL)', resizeMs, 'ms CPU', '< 60 ms', resizeMs < 60);

  // CLIP's tokenizer: the 49k merges loaded once, then short prompts encoded.
  const started = performance.now();
  const tokenizer = await ClipTokenizer.fromMergesFile(CLIP_MERGES, { vocabSize: 49408, contextLength: 77 });
  const loadMs = performance.now() - started;
  row("CLIP's merges loaded (bpe_simple_vocab_16e6)", loadMs, 'ms', '< 2,000 ms', loadMs < 2000);
  const subjects = ['cat', 'Lady Gaga', 'a piggy bank', 'Spider-Man', 'the Eiffel Tower', 'café', 'banana'];
  const prompts = Array.from({ length: 10_000 }, (_, i) => `a photo of ${subjects[i % 7]} number ${i}`);
  const begun = performance.now();
  for (const prompt of prompts) tokenizer.encode(prompt);
  const perSecond = (prompts.length / (performance.now() - begun)) * 1000;
  row(
    '10,000 short prompts encoded (fresh tokenizer)',
    perSecond,
    'prompts/s',
    '> 2,000/s',
    perSecond > 2000,
  );
  return { rows, within };
}

async function main() {
  const budgets = await budgetRows();
  budgets.rows.forEach((line) => console.error(line));
  const model = await ClipModel.load(config.modelDir, config);
  const bare = await bareSessions(model);
  const S = model.imageSize;
  const { app, url } = await startService();
  const rows: string[] = [];
  const report = (line: string) => {
    rows.push(line);
    console.error(line);
  };

  // Rows of fresh texts through the bare text encoder, and through a service route.
  const bareTextRate = (texts: string[][]) =>
    timeIt('bare', async () => {
      for (const round of texts) {
        const ids = round.map((text) => model.tokenizer.encode(text).ids);
        await bare.text.run({ input_ids: idsTensor(ids) });
      }
      return texts.length * texts[0].length;
    });
  // Texts new to the cache, one token longer than the bare rows (as the bare rows, padded alike).
  const httpTextRate = (service: string, route: string, texts: string[][], mark: string) =>
    timeIt('http', async () => {
      for (const round of texts)
        await post(`${service}/v1/${route}`, { texts: round.map((t) => `${t}${mark}`) });
      return texts.length * texts[0].length;
    });
  const ratioRow = (what: string, bareRate: { perSecond: number }, httpRate: { perSecond: number }) =>
    `| ${what} | ${bareRate.perSecond.toFixed(0)}/s | ${httpRate.perSecond.toFixed(0)}/s | ${(httpRate.perSecond / bareRate.perSecond).toFixed(2)} |`;

  // Text at batch 1 and 64.
  for (const [batch, rounds] of [
    [1, 300],
    [64, 20],
  ] as const) {
    const texts = Array.from({ length: rounds }, () => Array.from({ length: batch }, freshText));
    const bareRate = await bareTextRate(texts);
    for (const [route, what, mark] of [
      ['embed/text', 'text embeddings', '.'],
      ['attribution/text', 'attribution vectors W·t (uncached)', '!'],
    ]) {
      const httpRate = await httpTextRate(url, route, texts, mark);
      report(ratioRow(`${what}, batch ${batch}`, bareRate, httpRate));
    }
  }

  // The batch-64 attribution row again with the sessions on the event loop (ORT_THREAD=false), the
  // bare rate measured anew next to it: what the trip to the inference thread costs.
  {
    const onLoop = await startService({ inferenceThread: false });
    const texts = Array.from({ length: 20 }, () => Array.from({ length: 64 }, freshText));
    const bareRate = await bareTextRate(texts);
    const httpRate = await httpTextRate(onLoop.url, 'attribution/text', texts, '!');
    const what =
      'attribution vectors W·t (uncached), batch 64, sessions on the event loop (ORT_THREAD=false)';
    report(ratioRow(what, bareRate, httpRate));
    await onLoop.app.close();
  }

  // Images at batch 8: eight concurrent requests, merged by the micro-batcher.
  const pngs = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      sharp({
        create: { width: S, height: S, channels: 3, background: { r: 30 * i, g: 200 - 20 * i, b: 90 } },
      })
        .png()
        .toBuffer(),
    ),
  );
  const rounds = 15;
  const pixels = new Float32Array(8 * 3 * S * S).fill(0.5);
  const bareImages = await timeIt('bare', async () => {
    for (let r = 0; r < rounds; r++) {
      const { neurons } = await bare.trunk.run({
        pixel_values: new ort.Tensor('float32', pixels, [8, 3, S, S]),
      });
      await bare.head.run({ neurons });
    }
    return 8 * rounds;
  });
  const httpImages = await timeIt('http', async () => {
    for (let r = 0; r < rounds; r++) {
      await Promise.all(pngs.map((png) => post(`${url}/v1/embed/image`, { image: png.toString('base64') })));
    }
    return 8 * rounds;
  });
  report(ratioRow('images (decode + preprocess + trunk + head), batch 8', bareImages, httpImages));
  await app.close();

  // Concurrent single-text requests, with and without micro-batching.
  const concurrency: string[] = [];
  for (const maxBatch of [64, 1]) {
    const service = await startService({ maxBatch });
    const rate = await timeIt(`maxBatch ${maxBatch}`, async () => {
      const requests = Array.from({ length: 256 }, freshText);
      let next = 0;
      const worker = async () => {
        while (next < requests.length)
          await post(`${service.url}/v1/embed/text`, { texts: [requests[next++]] });
      };
      await Promise.all(Array.from({ length: 32 }, worker));
      return requests.length;
    });
    concurrency.push(
      `| ${maxBatch === 1 ? 'off (BATCH_MAX_SIZE=1)' : 'on (BATCH_MAX_SIZE=64)'} | ${rate.perSecond.toFixed(0)}/s |`,
    );
    await service.app.close();
  }
  concurrency.forEach((line) => console.error(line));

  // Cached attribution latency under load. autocannon's client shares the server's event loop (as
  // in the rows above), runs in a worker thread of its own, or runs as a process of its own, as a
  // real client would (then the server's CPU time is not shared with the client's heap and GC).
  const service = await startService();
  const body = JSON.stringify({ texts: ['yellow'], topK: 10 });
  await post(`${service.url}/v1/attribution/text`, JSON.parse(body));
  const cachedRows: string[] = [];
  for (const client of CLIENTS) {
    const cannon = await cachedAttributionLoad(service.url, body, client);
    cachedRows.push(
      `| cached POST /v1/attribution/text, concurrency 32, ${client} | ${cannon.requests.average.toFixed(0)} req/s | p50 ${cannon.latency.p50} ms | p99 ${cannon.latency.p99} ms | errors ${cannon.errors + cannon.non2xx} |`,
    );
  }
  await service.app.close();
  // The same while eight image requests at a time keep the model busy, with onnxruntime on its own
  // thread (the default) and on the event loop (ORT_THREAD=false), where a cached answer waits for
  // the image batch that is running.
  for (const inferenceThread of [true, false])
    cachedRows.push(await cachedWhileImagesRun(inferenceThread, S));
  const cached = cachedRows.join('\n');
  console.error(cached);

  const markdown = [
    '# Service core benchmark',
    '',
    `Run ${new Date().toISOString()} on model \`${model.name}\` (${model.neuronCount} neurons, ${S} px), CPU provider,`,
    `${(await import('node:os')).cpus().length} cores shared with everything else on the machine; client and server in one process (the last table says where the client ran).`,
    '',
    '| workload | bare onnxruntime | through HTTP | ratio |',
    '|---|---|---|---|',
    ...rows,
    '',
    '256 single-text requests at concurrency 32:',
    '',
    '| micro-batching | throughput |',
    '|---|---|',
    ...concurrency,
    '',
    '| workload | throughput | median | p99 | errors |',
    '|---|---|---|---|---|',
    cached,
    '',
    'CPU-only steps (no model) against their budgets; a step over budget fails the run:',
    '',
    '| step | measured | budget | within |',
    '|---|---|---|---|',
    ...budgets.rows,
    '',
  ].join('\n');
  // The embedded model's results go to core.md; another MODEL_DIR's to core-<name>.md.
  const file = model.name === 'toyworld' ? 'core.md' : `core-${model.name}.md`;
  await writeFile(path.join(REPO_ROOT, 'bench/results', file), markdown);
  await model.release();
  console.log(markdown);
  if (!budgets.within) {
    console.error('a CPU-only step went over its budget (see the last table)');
    process.exitCode = 1;
  }
}

const CLIENTS = [
  'client on the server’s event loop',
  'client in a worker thread',
  'client in a process of its own',
] as const;

interface LoadResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  errors: number;
  non2xx: number;
}

/** 10 s of one cached attribution request at concurrency 32, with the client where `client` says. */
async function cachedAttributionLoad(
  url: string,
  body: string,
  client: (typeof CLIENTS)[number],
): Promise<LoadResult> {
  const target = `${url}/v1/attribution/text`;
  const load = { connections: 32, duration: 10 };
  if (client === 'client in a process of its own') {
    const cli = fileURLToPath(import.meta.resolve('autocannon/autocannon.js'));
    const args = ['-c', `${load.connections}`, '-d', `${load.duration}`, '-m', 'POST'];
    args.push('-H', 'content-type=application/json', '-b', body, '--json', target);
    const { stdout } = await run(process.execPath, [cli, ...args], { maxBuffer: 1 << 24 });
    return JSON.parse(stdout) as LoadResult;
  }
  const headers = { 'content-type': 'application/json' };
  const workers = client === 'client in a worker thread' ? { workers: 1 } : {};
  return autocannon({ url: target, method: 'POST', headers, body, ...load, ...workers });
}

async function cachedWhileImagesRun(inferenceThread: boolean, S: number): Promise<string> {
  const service = await startService({ inferenceThread });
  const body = JSON.stringify({ texts: ['yellow'], topK: 10 });
  await post(`${service.url}/v1/attribution/text`, JSON.parse(body));
  const pngs = await Promise.all(
    Array.from({ length: 64 }, async (_, i) => {
      const background = { r: (37 * i) % 256, g: (91 * i) % 256, b: i };
      const png = await sharp({ create: { width: S, height: S, channels: 3, background } })
        .png()
        .toBuffer();
      return png.toString('base64');
    }),
  );
  const trunkMs: number[] = [];
  service.app.clip.runObserver = (graph, _rows, ms) => {
    if (graph === 'visual_trunk') trunkMs.push(ms);
  };
  let busy = true;
  let images = 0;
  const lane = async (k: number) => {
    for (let i = 0; busy; i++) {
      await post(`${service.url}/v1/embed/image`, { image: pngs[(k + 8 * i) % pngs.length] });
      images += 1;
    }
  };
  const imageLoad = Array.from({ length: 8 }, (_, k) => lane(k));
  const cannon = await cachedAttributionLoad(service.url, body, 'client in a worker thread');
  busy = false;
  await Promise.all(imageLoad);
  await service.app.close();
  const meanTrunk = trunkMs.reduce((a, b) => a + b, 0) / Math.max(1, trunkMs.length);
  const where = inferenceThread
    ? 'onnxruntime on its own thread'
    : 'onnxruntime on the event loop (ORT_THREAD=false)';
  return (
    `| cached POST /v1/attribution/text, concurrency 32, client in a worker thread, while 8 concurrent image requests keep the model busy, ${where} (${images} images; trunk batches ${meanTrunk.toFixed(0)} ms on average) ` +
    `| ${cannon.requests.average.toFixed(0)} req/s | p50 ${cannon.latency.p50} ms | p99 ${cannon.latency.p99} ms | errors ${cannon.errors + cannon.non2xx} |`
  );
}

await main();
