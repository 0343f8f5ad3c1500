/**
 * The whole-model labelling job (src/evidence/label-job.ts) spread over two processes sharing a Redis:
 * a server app in this process (it works jobs too) and one `src/bin/worker.ts` process, on one
 * DATA_DIR, with a throwaway redis-server on a free port (so that no other run sees its queues).
 *
 * The same collection (a few of the probe archive's pictures) is first labelled by the in-process
 * job backend alone (no Redis); then by the two processes: both compute shards (the job's result
 * names the processes that wrote shards; the worker's log names the shard jobs it computed), and
 * the automatic catalogue (labels, scores, evidence, measure of every neuron) is the same, entry for
 * entry, as the one-process run's.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { App } from '../src/app.js';
import { DEFAULT_MODEL_DIR } from '../src/config.js';
import type { AutomaticCatalogue } from '../src/evidence/catalogue.js';
import { startRedis, stopProcess, type RedisProcess } from '../bench/lib/processes.js';
import { buildTestApp } from './helpers/app.js';
import { startWorker, type WorkerProcess } from './helpers/worker-process.js';

const SHARD = '32'; // 16 shards of the 512 neurons
const SHARDS = 16;
const PER = 1; // pictures per category of the probe archive

const tmp = await mkdtemp(path.join(os.tmpdir(), 'neuron-labels-redis-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));
const dataDir = path.join(tmp, 'data');

/** Builds the app with variables set only while its plugins read them. */
async function appWith(redisUrl?: string): Promise<App> {
  const env = { NEURON_LABEL_SHARD: SHARD };
  const saved = Object.fromEntries(Object.keys(env).map((name) => [name, process.env[name]]));
  Object.assign(process.env, env);
  try {
    return await buildTestApp({ modelDir: DEFAULT_MODEL_DIR, dataDir, redisUrl });
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

async function until<T>(probe: () => Promise<T | undefined | false>, what: string, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Submits a labelling of "probe" and waits for its end; the job's final view. */
async function label(app: App) {
  const submitted = await app.inject({ method: 'POST', url: '/v1/neurons/labels', payload: {} });
  if (submitted.statusCode !== 202) throw new Error(submitted.body);
  const { jobId } = submitted.json() as { jobId: string };
  return until(async () => {
    const view = (await app.inject({ url: `/v1/jobs/${jobId}` })).json();
    return ['completed', 'failed', 'cancelled'].includes(view.state) ? view : undefined;
  }, `labelling ${jobId} to end`);
}

const automatic = async (app: App) =>
  JSON.parse(await readFile(app.neuronLabels.catalogue.automaticFile, 'utf8')) as AutomaticCatalogue;

// The collection "probe" (the routes' default) from the probe archive's pictures.
const archive = path.join(tmp, 'archive');
await mkdir(archive);
execFileSync('tar', ['xzf', path.join(DEFAULT_MODEL_DIR, 'probe.tar.gz'), '-C', archive]);
const uploads: { name: string; bytes: Buffer; category: string; caption: null }[] = [];
for (const set of ['colour-patch', 'shape', 'face']) {
  for (const category of (await readdir(path.join(archive, set))).sort()) {
    for (const file of (await readdir(path.join(archive, set, category))).sort().slice(0, PER)) {
      const bytes = await readFile(path.join(archive, set, category, file));
      uploads.push({ name: `${set}/${category}/${file}`, bytes, category, caption: null });
    }
  }
}

let reference: AutomaticCatalogue;

t.test('one process: the in-process job backend labels every neuron', async (t) => {
  const began = Date.now();
  const app = await appWith();
  t.teardown(() => app.close());
  await app.words.settled(); // the word index, written under DATA_DIR for the worker to load
  const indexed = Date.now();
  await app.collections.create('probe', 'test');
  await app.collections.addImages('probe', uploads);
  await app.collections.settled('probe');
  const built = Date.now();
  const view = await label(app);
  t.comment(
    `app and word index ${indexed - began} ms, collection ${built - indexed} ms, labelling ${Date.now() - built} ms`,
  );
  t.equal(view.state, 'completed', JSON.stringify(view));
  t.match(view.result, { neurons: 512, labelled: 512, images: uploads.length });
  t.same(view.result.workers, [`${process.pid}@${os.hostname()}`], 'this process computed every shard');
  reference = await automatic(app);
  t.equal(reference.neurons.length, 512);
});

t.test('two processes on one Redis: both compute shards, the same catalogue', async (t) => {
  const started: { redis?: RedisProcess; app?: App; worker?: WorkerProcess } = {};
  t.teardown(async () => {
    if (started.worker) await stopProcess(started.worker.child, 'SIGKILL');
    await started.app?.close();
    await started.redis?.stop();
  });
  started.redis = await startRedis();
  const worker = (started.worker = startWorker({
    ...process.env,
    REDIS_URL: started.redis.url,
    MODEL_DIR: DEFAULT_MODEL_DIR,
    DATA_DIR: dataDir,
    ORT_PROVIDERS: 'cpu',
    ORT_INTRA_OP_THREADS: '1',
    NEURON_LABEL_SHARD: SHARD,
    WORKER_LOCK_MS: '5000',
  }));
  const app = (started.app = await appWith(started.redis.url));
  await until(async () => worker.lines.some((line) => line.msg === 'worker ready'), 'the worker to be ready');

  const view = await label(app);
  t.equal(view.state, 'completed', JSON.stringify(view));
  t.match(view.result, { neurons: 512, labelled: 512, images: uploads.length, resumedShards: 0 });
  t.same(view.progress.shards, { total: SHARDS, written: SHARDS, running: 0 });
  const host = os.hostname();
  t.same(
    view.result.workers,
    [`${process.pid}@${host}`, `${worker.child.pid}@${host}`].sort(),
    `shards computed by both processes: ${view.result.workers.join(', ')}`,
  );
  const parentHere = !worker.lines.some(
    (line) => line.msg === 'job started' && line.kind === 'neuron-labels',
  );
  const shardJobs = worker.lines.filter(
    (line) => line.kind === 'neuron-labels-shard' && line.msg === 'job finished' && line.result?.computed,
  ).length;
  t.comment(
    `the labelling ran in ${parentHere ? 'the server' : 'the worker'}; the worker's shard jobs computed: ${shardJobs}`,
  );

  const labelled = await automatic(app);
  t.equal(labelled.jobId, view.id);
  t.equal(labelled.multimodalShare, reference.multimodalShare, 'the multimodal share');
  t.equal(labelled.neurons.length, 512);
  let differing = 0;
  for (let neuron = 0; neuron < 512; neuron++) {
    if (JSON.stringify(labelled.neurons[neuron]) !== JSON.stringify(reference.neurons[neuron])) {
      if (differing++ < 3) t.same(labelled.neurons[neuron], reference.neurons[neuron], `neuron ${neuron}`);
    }
  }
  t.equal(differing, 0, 'every entry (labels, scores, evidence, measure) equals the one-process run’s');
  t.same(
    labelled.neurons.map((entry) => [entry.label, entry.score]),
    reference.neurons.map((entry) => [entry.label, entry.score]),
    'the automatic labels and their scores',
  );
});
