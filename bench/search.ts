/**
 * Benchmark of the maximal-text search (results in bench/results/search.md):
 *
 *   npx tsx bench/search.ts [--model DIR] [--neurons 20] [--steps 100] [--batch 64] [--out FILE]
 *
 * 1. Quality, on `--neurons` neurons evenly spaced over the model's C: hill climbing (length 6,
 *    `--steps` steps of `--batch` candidates, default restarts) vs random search at the same number
 *    of evaluations vs the best single vocabulary token (the head of the ranked pool).
 * 2. Speed, candidates evaluated per second: the hill climber as a whole (proposals, canonical
 *    tokens, the text encoder through the service's micro-batcher, the objective) vs a bare
 *    onnxruntime session on the same graph at the same batch and row length (6 tokens + start/end),
 *    and vs the same rows zero-padded to the model's context length (77 for OpenAI's CLIP).
 * Everything runs on one onnxruntime thread (the benchmark machine is shared).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { createCache } from '../src/cache/index.js';
import { ClipModel } from '../src/clip/clip-model.js';
import { DEFAULT_MODEL_DIR, loadConfig, REPO_ROOT } from '../src/config.js';
import { randomSearch } from '../src/search/baselines.js';
import { hillClimb } from '../src/search/hill-climb.js';
import { searchMaxText, searchSetup } from '../src/search/max-text.js';
import { normaliseRequest } from '../src/search/request.js';
import { exportCheckpointCached } from '../test/helpers/tiny-model.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: DEFAULT_MODEL_DIR },
    neurons: { type: 'string', default: '20' },
    steps: { type: 'string', default: '100' },
    batch: { type: 'string', default: '64' },
    out: { type: 'string', default: path.join(REPO_ROOT, 'bench/results/search.md') },
    // A real-size model directory (e.g. a random-weight RN50-x4 export) for one more speed row.
    large: { type: 'string' },
  },
});
const NEURONS = Number(args.neurons);
const STEPS = Number(args.steps);
const BATCH = Number(args.batch);
const LENGTH = 6;

const quiet = { info() {}, warn() {}, error() {} };
const config = {
  ...loadConfig({}),
  executionProviders: ['cpu' as const],
  intraOpThreads: 1,
  interOpThreads: 1,
};
const model = await ClipModel.load(path.resolve(args.model), config);
const cache = createCache({ ttlSeconds: 3600, logger: quiet });
const C = model.neuronCount;
const lines: string[] = [];
const out = (line = '') => {
  lines.push(line);
  console.log(line);
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const f3 = (x: number) => x.toFixed(3);

out(`# Maximal-text search benchmark`);
out();
out(
  `Model \`${model.name}\` (${path.relative(REPO_ROOT, path.resolve(args.model))}): C = ${C} neurons, D = ${model.embedDim},`,
);
out(
  `vocabulary ${model.tokenizer.vocabSize}, context ${model.tokenizer.contextLength}. CPU, one onnxruntime thread;`,
);
out(
  `${new Date().toISOString().slice(0, 16)} UTC, on a 2-core machine shared with other jobs (timings are noisy).`,
);
out();

// ---- 1. Quality -------------------------------------------------------------------------------
out(`## Quality: ${NEURONS} neurons, ${STEPS} steps × batch ${BATCH}, length ${LENGTH}`);
out();
out('Scores are the objective (W·t/|t|)_i; random search draws the same number of sequences from');
out('the same proposal distribution (top of the ranked pool + 20% uniform); "best word" is the best');
out('single vocabulary token (one pass over the vocabulary, which the climber also pays once).');
out();
out('| neuron | label | hill climb | random search | best word | evaluations | hill-climb text |');
out('|---:|---|---:|---:|---:|---:|---|');
const catalogue = await readFile(path.join(path.resolve(args.model), 'neurons.json'), 'utf8')
  .then((text) => JSON.parse(text) as Record<string, { label?: string }>)
  .catch(() => ({}) as Record<string, { label?: string }>);
const rows: { climb: number; random: number; word: number }[] = [];
for (let k = 0; k < NEURONS; k++) {
  const neuron = Math.floor((k * C) / NEURONS);
  const request = normaliseRequest({ neuron, steps: STEPS, batch: BATCH, timeLimitS: 600 }, C);
  const climbed = await searchMaxText(model, cache, request);
  const setup = await searchSetup(model, cache, request);
  const random = await randomSearch({
    ...setup,
    evaluations: climbed.evaluations,
    length: LENGTH,
    batch: BATCH,
    seed: 0,
  });
  const [word] = await setup.scorer.score([[setup.pool[0]]]);
  rows.push({ climb: climbed.score, random: random.score, word });
  const label = catalogue[String(neuron)]?.label ?? '';
  out(
    `| ${neuron} | ${label} | ${f3(climbed.score)} | ${f3(random.score)} | ${f3(word)} (${setup.describe([setup.pool[0]])}) | ${climbed.evaluations} | ${climbed.text.replaceAll('|', '\\|')} |`,
  );
}
const winsRandom = rows.filter((r) => r.climb > r.random).length;
const winsWord = rows.filter((r) => r.climb > r.word).length;
out();
out(
  `Mean score: hill climb **${f3(mean(rows.map((r) => r.climb)))}**, random search ${f3(mean(rows.map((r) => r.random)))}, best word ${f3(mean(rows.map((r) => r.word)))}.`,
);
out(
  `Hill climbing beats random search on ${winsRandom}/${NEURONS} neurons and the best word on ${winsWord}/${NEURONS}.`,
);
out();

// ---- 2. Speed ---------------------------------------------------------------------------------
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** Seconds of CPU this process used (all threads) since `from`: robust to other jobs on the machine. */
const cpuSeconds = (from: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1e6;
};

/** Candidates per second, three ways, on one model; rounds alternate to share the machine's noise. */
async function speed(speedModel: ClipModel, batch: number, rounds = 5, steps = 60) {
  const session = await ort.InferenceSession.create(speedModel.directory.path('text.onnx'), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionProviders: ['cpu'],
  });
  const { startId, endId, contextLength, vocabSize } = speedModel.tokenizer;
  const rows = Array.from({ length: batch }, (_, r) => [
    startId,
    ...Array.from({ length: LENGTH }, (_, i) => 300 + ((r * 7 + i * 13) % Math.min(500, vocabSize - 302))),
    endId,
  ]);
  const feeds = (width: number) => {
    const ids = new BigInt64Array(batch * width);
    rows.forEach((row, r) => row.forEach((id, i) => (ids[r * width + i] = BigInt(id))));
    return { input_ids: new ort.Tensor('int64', ids, [batch, width]) };
  };
  const bareRate = async (width: number, runs: number) => {
    const input = feeds(width);
    await session.run(input);
    const started = process.cpuUsage();
    for (let i = 0; i < runs; i++) await session.run(input);
    return (batch * runs) / cpuSeconds(started);
  };
  const request = normaliseRequest(
    { neuron: 0, steps, batch, restarts: 50, timeLimitS: 600 },
    speedModel.neuronCount,
  );
  const setup = await searchSetup(speedModel, cache, request);
  const climb = (seed: number) =>
    hillClimb({ ...setup, length: LENGTH, steps, batch, restarts: 50, seed, timeLimitMs: 6e5 });
  await climb(99); // warm-up: JIT, the memo of word encodings
  const measured = {
    search: [] as number[],
    service: [] as number[],
    bare: [] as number[],
    padded: [] as number[],
  };
  for (let round = 0; round < rounds; round++) {
    const started = process.cpuUsage();
    const result = await climb(round);
    measured.search.push(result.evaluations / cpuSeconds(started));
    const runs = Math.ceil(result.evaluations / batch);
    const serviceStarted = process.cpuUsage();
    for (let i = 0; i < runs; i++) await speedModel.embedTokenRows(rows);
    measured.service.push((batch * runs) / cpuSeconds(serviceStarted));
    measured.bare.push(await bareRate(LENGTH + 2, runs));
    measured.padded.push(await bareRate(contextLength, Math.max(5, Math.ceil(runs / 6))));
  }
  await session.release();
  const m = {
    search: median(measured.search),
    service: median(measured.service),
    bare: median(measured.bare),
    padded: median(measured.padded),
  };
  out(
    `| ${speedModel.name} | ${contextLength} | ${batch} | ${m.search.toFixed(0)} | ${m.service.toFixed(0)} | ${m.bare.toFixed(0)} | ${m.padded.toFixed(0)} | ${(m.search / m.bare).toFixed(2)}× | ${(m.search / m.padded).toFixed(2)}× |`,
  );
}

out(`## Speed: candidates evaluated per second (length ${LENGTH}, rows of ${LENGTH + 2} tokens)`);
out();
out('- **search**: the whole hill climber (proposals, canonical tokens, the micro-batched text');
out('  encoder, the objective), 60 steps, after a warm-up climb; the candidate pool is cached;');
out('- **service encoder**: `ClipModel.embedTokenRows` (micro-batcher + session) on fixed rows;');
out('- **bare**: one onnxruntime session on text.onnx at the same batch and row length;');
out('- **padded**: that session on the same rows zero-padded to the context length.');
out('Candidates per CPU-second of this process (the machine is shared, so wall-clock rates swing');
out('with other jobs), medians of 5 alternating rounds (of 3 rounds of 20 steps for a `--large` model).');
out();
out(
  '| model | context | batch | search | service encoder | bare | padded | search / bare | search / padded |',
);
out('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
await speed(model, BATCH);
await speed(model, 32);
const reference = await exportCheckpointCached(
  'reference-small',
  path.resolve(REPO_ROOT, '../shared/clip/reference-small/checkpoint.pt'),
).catch(() => undefined);
if (reference) {
  const small = await ClipModel.load(reference, config);
  await speed(small, BATCH);
  await small.release();
}
if (args.large) {
  // Fewer, shorter rounds: each step is a real-size text encoder run.
  const large = await ClipModel.load(path.resolve(args.large), config);
  await speed(large, BATCH, 3, 20);
  await large.release();
}
out();
out(`Batch ${BATCH} equals BATCH_MAX_SIZE (64 by default), so each step is one onnxruntime run that`);
out('starts at once; a smaller batch goes out on the next turn of the event loop (BATCH_MAX_WAIT_MS');
out(`${config.maxBatchWaitMs} ms). The reference-small model (random weights, context 77) gives the`);
out('comparison with the 77-padded path of OpenAI CLIP.');
out();
out('Where the gap to the bare encoder goes: per step of 64 candidates the climber spends a few');
out('hundred microseconds of JavaScript (proposals, deduplication keys, canonical token forms, texts,');
out('the top-n table), and the service encoder adds its own few percent (micro-batcher, int64');
out('conversion, and the trip to the inference thread and back: ~0.2–0.3 ms of CPU per run on these');
out(
  'machines; ORT_THREAD=false runs the sessions on the event loop instead); the first search on a model also pays one BPE run per vocabulary token to find the',
);
out('tokens that are their own encoding (~50 µs each). That cost is per candidate, not per FLOP: on');
out('these tiny encoders (1.5–4 ms of CPU per batch of 64) it is 10–30% of a step; on a real CLIP');
out('text encoder (12 layers × 512 wide, ~100× the work) it vanishes. Batch 32 pays the same');
out('per-step cost over half the rows.');
if (args.large) {
  out();
  out(
    `The last row is a real-size model (\`--large ${path.basename(path.dirname(path.resolve(args.large)))}/…\`: a`,
  );
  out('random-weight RN50-x4 export, `KEEP=1 bash bench/export-rn50x4.sh`), with the CLIP vocabulary.');
}

await model.release();
await writeFile(args.out!, lines.join('\n') + '\n');
