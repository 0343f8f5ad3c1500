/**
 * HTTP throughput and latency benchmark (issue 23; `npm run bench -- http`, results in
 * bench/results/http.md, or http-<model>.md for another model; the latency rows alone with
 * `--rounds 0`, `MODEL_DIR=… npm run bench -- http-latency`, in http-latency[-<model>].md):
 *
 *   npx tsx bench/http.ts [MODEL_DIR] [--rounds 12] [--duration 10] [--repeats 3] [--warmup 10]
 *
 * 1. Text embeddings and attribution vectors at batch 64 through HTTP against the bare onnxruntime
 *    session on the same graph, in one run. The service is its own process (src/bin/server.ts, the
 *    in-memory cache, CPU provider, the session options of src/clip/onnx-session.ts); the bare
 *    sessions live in this process with the same options: text.onnx, and for attribution text.onnx
 *    then the W·t Gemm of src/clip/bilinear-graph.ts (one thread, as the service) and the division
 *    by |t|. The client sends one request of 64 new texts at a time (every text new to the cache:
 *    six one-token words: 8 tokens with start and end under CLIP's BPE) and reads the whole answer: JSON parsed with
 *    res.json(), .npy read into a Float32Array. The configurations take turns round by round (the
 *    order rotating), so that a change in the machine's load falls on all of them alike; the bare
 *    rows are timed on the same texts as the JSON rows of the round.
 * 2. Cached POST /v1/attribution/text at concurrency 32 (autocannon in a process of its own, for
 *    --duration seconds), beside a bare Fastify "hello" server (bench/hello-server.ts, a process of
 *    its own) driven the same way in the same run: the floor of this machine.
 *
 * The cores are shared with whatever else runs: the load average is recorded before and after.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { bilinearGraph, BILINEAR_INPUT, BILINEAR_OUTPUT } from '../src/clip/bilinear-graph.js';
import { loadModelDirectory, MODEL_FILES } from '../src/clip/model-directory.js';
import { ClipTokenizer } from '../src/clip/tokenizer.js';
import { freePort, ROOT, sleep, spawnOwned, startServer, stopProcess } from './lib/processes.js';

const run = promisify(execFile);

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const positional = process.argv
  .slice(2)
  .filter((arg, i, all) => !arg.startsWith('--') && !all[i - 1]?.startsWith('--'));
const MODEL_DIR = path.resolve(positional[0] ?? process.env.MODEL_DIR ?? path.join(ROOT, 'models/toyworld'));
/** 0 (or BENCH_HTTP_ROUNDS=0, `npm run bench -- http-latency`): the latency rows alone. */
const ROUNDS = option('rounds', Number(process.env.BENCH_HTTP_ROUNDS ?? 12));
const DURATION_S = option('duration', 10);
const REPEATS = option('repeats', 3);
const WARMUP_S = option('warmup', 10);
const BATCH = 64;
/** The throughput table's rows: what, then its bare, JSON and .npy configurations. */
const THROUGHPUT = [
  ['text embeddings', 'bare text.onnx', 'POST /v1/embed/text, JSON', 'POST /v1/embed/text, .npy'],
  [
    'attribution vectors W·t/|t| (uncached)',
    'bare text.onnx + W·t Gemm',
    'POST /v1/attribution/text full, JSON',
    'POST /v1/attribution/text, .npy',
  ],
];
const CONNECTIONS = 32;

/** Words of one token each under CLIP's BPE (the model's tokenizer checks), six to a text. */
const WORDS = (
  'red blue green yellow black white dog cat bird fish tree house car boat sun moon star road ' +
  'apple bread music happy sad old new big small cold hot city river snow rain fire stone glass'
).split(' ');

let words = WORDS;
let counter = 0;
/** A text no earlier call gave: the counter's digits in base words.length, as six words. */
function freshText(): string {
  let n = counter++;
  const picked: string[] = [];
  for (let i = 0; i < 6; i++) {
    picked.push(words[n % words.length]!);
    n = Math.floor(n / words.length);
  }
  return picked.join(' ');
}

const loadAverage = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

interface Timed {
  seconds: number;
  /** CPU seconds of this process and the service's together. */
  cpu: number;
  rows: number;
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

async function main(): Promise<void> {
  const loadBefore = loadAverage();
  const directory = await loadModelDirectory(MODEL_DIR);
  const { manifest } = directory;
  const C = manifest.neuron_count;
  const D = manifest.embed_dim;
  const tokenizer = await ClipTokenizer.fromMergesFile(directory.path(manifest.tokenizer.merges), {
    vocabSize: manifest.vocab_size,
    contextLength: manifest.context_length,
  });
  // The model's own tokenizer decides: the words of one token each (CLIP's BPE: all of them), else all.
  const single = WORDS.filter((word) => tokenizer.encode(word).ids.length === 3);
  if (single.length >= 8) words = single;
  const sample = Array.from({ length: 256 }, freshText);
  const tokensPerText = sample.reduce((n, text) => n + tokenizer.encode(text).ids.length, 0) / sample.length;

  // The bare sessions, with the options of src/clip/onnx-session.ts (intra-op threads: onnxruntime's
  // default, all cores, as ORT_INTRA_OP_THREADS=0; inter-op 1).
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
  };
  const textSession = await ort.InferenceSession.create(directory.path(MODEL_FILES.textEncoder), options);
  const gemmSession = await ort.InferenceSession.create(bilinearGraph(directory.bilinear, C, D), {
    ...options,
    intraOpNumThreads: 1,
  });

  const idsTensor = (texts: string[]): ort.Tensor => {
    const rows = texts.map((text) => tokenizer.encode(text).ids);
    const length = Math.max(...rows.map((row) => row.length));
    const ids = new BigInt64Array(rows.length * length);
    rows.forEach((row, r) => row.forEach((id, i) => (ids[r * length + i] = BigInt(id))));
    return new ort.Tensor('int64', ids, [rows.length, length]);
  };
  const bareText = async (texts: string[]) => {
    const out = await textSession.run({ input_ids: idsTensor(texts) });
    return out.text_embeds!.data as Float32Array;
  };
  const bareAttribution = async (texts: string[]) => {
    const t = await bareText(texts);
    const out = await gemmSession.run({ [BILINEAR_INPUT]: new ort.Tensor('float32', t, [texts.length, D]) });
    const a = out[BILINEAR_OUTPUT]!.data as Float32Array;
    for (let r = 0; r < texts.length; r++) {
      let norm = 0;
      for (let j = 0; j < D; j++) norm += t[r * D + j]! ** 2;
      const scale = 1 / Math.sqrt(norm);
      for (let i = 0; i < C; i++) a[r * C + i]! *= scale;
    }
    return a;
  };

  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-http-'));
  const server = await startServer({
    MODEL_DIR,
    REDIS_URL: '',
    DATA_DIR: dataDir,
    // Nothing in the background: no default-composition fit, no word index built at start.
    WARM_DEFAULT_FIT: 'false',
    WORD_INDEX_AUTOBUILD: 'false',
  });
  console.error(`service pid ${server.pid} at ${server.url} on ${manifest.name} (C ${C}, D ${D})`);

  const post = async (route: string, body: unknown, accept?: string): Promise<Response> => {
    const res = await fetch(`${server.url}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(accept ? { accept } : {}) },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${route}: ${res.status} ${await res.text()}`);
    return res;
  };
  const readNpy = async (res: Response, columns: number): Promise<Float32Array> => {
    const bytes = await res.arrayBuffer();
    const headerLength = 10 + new DataView(bytes).getUint16(8, true);
    const values = new Float32Array(bytes, headerLength);
    if (values.length !== BATCH * columns) throw new Error(`${values.length} values, not ${BATCH * columns}`);
    return values;
  };

  type Config = { name: string; work: (texts: string[]) => Promise<unknown>; bare: boolean };
  const configs: Config[] = [
    { name: 'bare text.onnx', bare: true, work: bareText },
    {
      name: 'POST /v1/embed/text, JSON',
      bare: false,
      work: async (texts) => (await post('/v1/embed/text', { texts })).json(),
    },
    {
      name: 'POST /v1/embed/text, .npy',
      bare: false,
      work: async (texts) => readNpy(await post('/v1/embed/text', { texts }, 'application/x-npy'), D),
    },
    { name: 'bare text.onnx + W·t Gemm', bare: true, work: bareAttribution },
    {
      name: 'POST /v1/attribution/text full, JSON',
      bare: false,
      work: async (texts) => (await post('/v1/attribution/text', { texts, full: true })).json(),
    },
    {
      name: 'POST /v1/attribution/text, .npy',
      bare: false,
      work: async (texts) => readNpy(await post('/v1/attribution/text', { texts }, 'application/x-npy'), C),
    },
  ];

  // One warm-up round (sessions, JIT, connections), then ROUNDS rounds in turn.
  const timings = new Map<string, Timed>(configs.map((c) => [c.name, { seconds: 0, cpu: 0, rows: 0 }]));
  const cpuNow = () => {
    const own = process.cpuUsage();
    return (own.user + own.system) / 1e6 + processCpuSeconds(server.pid);
  };
  for (let round = ROUNDS > 0 ? -1 : 0; round < ROUNDS; round++) {
    const jsonTexts = Array.from({ length: BATCH }, freshText);
    const order = configs.map((_, i) => configs[(i + Math.max(round, 0)) % configs.length]!);
    for (const config of order) {
      const texts = config.bare ? jsonTexts : Array.from({ length: BATCH }, freshText);
      const [started, cpuStarted] = [performance.now(), cpuNow()];
      await config.work(texts);
      const seconds = (performance.now() - started) / 1000;
      const cpu = cpuNow() - cpuStarted;
      if (round < 0) continue;
      const timed = timings.get(config.name)!;
      timed.seconds += seconds;
      timed.cpu += cpu;
      timed.rows += BATCH;
    }
    if (round >= 0) console.error(`round ${round + 1}/${ROUNDS} done`);
  }
  const rate = (name: string) => timings.get(name)!.rows / timings.get(name)!.seconds;
  const perCpu = (name: string) => timings.get(name)!.rows / timings.get(name)!.cpu;
  const throughputRows = (ROUNDS > 0 ? THROUGHPUT : []).map(([what, bare, json, npy]) => {
    const b = rate(bare!);
    const [j, n] = [rate(json!), rate(npy!)];
    const [bc, jc, nc] = [perCpu(bare!), perCpu(json!), perCpu(npy!)];
    return (
      `| ${what}, batch ${BATCH} | ${b.toFixed(1)}/s | ${j.toFixed(1)}/s (${(j / b).toFixed(2)}×) | ${n.toFixed(1)}/s (${(n / b).toFixed(2)}×) ` +
      `| ${bc.toFixed(1)} | ${jc.toFixed(1)} (${(jc / bc).toFixed(2)}×) | ${nc.toFixed(1)} (${(nc / bc).toFixed(2)}×) |`
    );
  });
  throughputRows.forEach((row) => console.error(row));

  // Cached attribution at concurrency 32, and the bare Fastify floor, each driven by autocannon
  // in a process of its own.
  const body = JSON.stringify({ texts: ['yellow'], topK: 10 });
  await (await post('/v1/attribution/text', JSON.parse(body))).json();
  const hello = await startHello();
  const latencyRows: string[] = [];
  const latencies: { pass: number; target: string; p99: number; cpuMs: number }[] = [];
  /** Per pass, the cached attribution's figure over the floor's (POST /hello, the same body). */
  const ratios = (key: 'p99' | 'cpuMs') =>
    Array.from({ length: REPEATS }, (_, i) => {
      const of = (prefix: string) => latencies.find((l) => l.pass === i + 1 && l.target.startsWith(prefix))!;
      return `${(of('cached')[key] / of('bare Fastify: POST')[key]).toFixed(1)}×`;
    }).join(', ');
  try {
    const targets: [string, string, string | undefined, number][] = [
      ['bare Fastify: GET /hello', `${hello.url}/hello`, undefined, hello.pid],
      ['bare Fastify: POST /hello (the same JSON body, parsed)', `${hello.url}/hello`, body, hello.pid],
      [
        'cached POST /v1/attribution/text (topK 10, JSON)',
        `${server.url}/v1/attribution/text`,
        body,
        server.pid,
      ],
    ];
    // Warm-up, not counted: the service's first seconds of cached answers are slower (in one run on
    // RN50-x4 its three 10 s passes gave 326, 557 and 1,044 req/s while the floor's stayed within
    // 4,267–8,247), as V8 optimises the route's code after a few thousand requests.
    await autocannonProcess(`${server.url}/v1/attribution/text`, body, WARMUP_S);
    await autocannonProcess(`${hello.url}/hello`, body, WARMUP_S);
    // The targets take turns REPEATS times, so that a burst of other work on the shared cores
    // shows as one odd pass instead of falling on one target.
    for (let pass = 1; pass <= REPEATS; pass++) {
      for (const [what, url, payload, pid] of targets) {
        const cpuBefore = processCpuSeconds(pid);
        const result = await autocannonProcess(url, payload);
        const cpuMs = ((processCpuSeconds(pid) - cpuBefore) * 1000) / Math.max(1, result.requests.total);
        const row = `| ${pass} | ${what} | ${result.requests.average.toFixed(0)} req/s | ${result.latency.p50} ms | ${result.latency.p99} ms | ${result.errors + result.non2xx} | ${cpuMs.toFixed(3)} ms | ${loadAverage().split(' ')[0]} |`;
        latencyRows.push(row);
        latencies.push({ pass, target: what, p99: result.latency.p99, cpuMs });
        console.error(row);
      }
    }
  } finally {
    await hello.stop();
  }

  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
  await textSession.release();
  await gemmSession.release();

  const markdown = [
    '# HTTP benchmark: vectors through the service vs the bare session',
    '',
    `Run ${new Date().toISOString()} on model \`${manifest.name}\` (C ${C}, D ${D}), CPU provider, ${os.cpus().length} cores`,
    `shared with other work (load average before ${loadBefore}, after ${loadAverage()}). The service is its own`,
    'process (in-memory cache, micro-batching on); the bare sessions run in the client process with the',
    ...(ROUNDS > 0
      ? [
          `same options; ${ROUNDS} rounds of one request of ${BATCH} new texts (${tokensPerText.toFixed(1)} tokens on average with start and end) per configuration, taking turns.`,
          'Rows/s include the client reading the whole answer (JSON parsed; .npy into a Float32Array).',
          '',
          'Rows per CPU second count the CPU time of the client process and of the service process together',
          '(/proc/<pid>/stat): on cores shared with other work they say what the HTTP path costs, whatever',
          'share of the cores each configuration got.',
          '',
          `| workload | bare onnxruntime | HTTP, JSON (ratio) | HTTP, .npy (ratio) | bare, rows per CPU s | JSON, rows per CPU s (ratio) | .npy, rows per CPU s (ratio) |`,
          '|---|---|---|---|---|---|---|',
          ...throughputRows,
        ]
      : ['same options. Latency rows alone (`--rounds 0`): no throughput rounds in this run.']),
    '',
    `Concurrency ${CONNECTIONS}, ${DURATION_S} s each, autocannon in a process of its own, the targets taking turns ${REPEATS} times`,
    `after ${WARMUP_S} s of warm-up load on each server (not counted);`,
    'the bare Fastify server (bench/hello-server.ts) is the floor of this machine in the same run:',
    '',
    'CPU per request is the server process’s CPU time (/proc/<pid>/stat) over the requests of the pass.',
    '',
    '| pass | target | throughput | p50 | p99 | errors | server CPU per request | load average (1 min) after |',
    '|---|---|---|---|---|---|---|---|',
    ...latencyRows,
    '',
    `The service against the floor, pass by pass (service / bare POST /hello): p99 ${ratios('p99')}; server CPU per request ${ratios('cpuMs')}.`,
    '',
    `Reproduce: \`npx tsx bench/http.ts ${MODEL_DIR.startsWith(ROOT) ? path.relative(ROOT, MODEL_DIR) : MODEL_DIR}${ROUNDS > 0 ? '' : ' --rounds 0'}\` (\`--rounds\`, \`--duration\`, \`--repeats\`, \`--warmup\`).`,
    '',
  ].join('\n');
  const base = ROUNDS > 0 ? 'http' : 'http-latency';
  const file = manifest.name === 'toyworld' ? `${base}.md` : `${base}-${manifest.name}.md`;
  writeFileSync(path.join(ROOT, 'bench/results', file), markdown);
  console.log(markdown);
}

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  errors: number;
  non2xx: number;
}

async function autocannonProcess(
  url: string,
  body: string | undefined,
  seconds = DURATION_S,
): Promise<AutocannonResult> {
  const cli = fileURLToPath(import.meta.resolve('autocannon/autocannon.js'));
  const args = ['-c', String(CONNECTIONS), '-d', String(seconds), '--json'];
  if (body !== undefined) args.push('-m', 'POST', '-H', 'content-type=application/json', '-b', body);
  const { stdout } = await run(process.execPath, [cli, ...args, url], { maxBuffer: 1 << 24 });
  return JSON.parse(stdout) as AutocannonResult;
}

/** bench/hello-server.ts as a process of its own, once it listens. */
async function startHello(): Promise<{ url: string; pid: number; stop: () => Promise<unknown> }> {
  const port = await freePort();
  const child = spawnOwned(process.execPath, ['--import', 'tsx', 'bench/hello-server.ts', String(port)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await Promise.race([
    once(child.stdout!, 'data'),
    sleep(30_000).then(() => [Buffer.from('timeout')]),
  ])) as Buffer[];
  if (!String(line).startsWith('listening')) throw new Error(`hello server: ${String(line)}`);
  return { url: `http://127.0.0.1:${port}`, pid: child.pid!, stop: () => stopProcess(child) };
}

await main();
