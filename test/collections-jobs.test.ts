/**
 * Collection builds as jobs of the one job API (src/collections/build-job.ts), on the embedded toy
 * model with small shards (COLLECTION_SHARD) and batches, so that a build has many shards:
 *
 * - in process (no Redis): the upload's 202 names a `collection-build` job; GET /v1/jobs/{id} and
 *   the SSE stream show its progress (uploads done / total, skipped files with reasons, images/s,
 *   shards) and its result; DELETE /v1/jobs/{id} cancels it (another client: 403): what was
 *   indexed stays (a contiguous prefix of complete shards), the rest is dropped;
 * - stopped mid-build (app.close, as on SIGTERM) and started again on the same DATA_DIR, the build
 *   resumes under the same job id where it stopped, and its rows are byte for byte those of an
 *   uninterrupted build of the same uploads;
 * - with a throwaway Redis, two `src/bin/worker.ts` processes (the server works no jobs itself):
 *   both compute shards, and the collection's means, maxima, argmax positions and embeddings are
 *   byte for byte those of the same uploads built by one worker (the in-process build above);
 *   progress arrives over SSE; a cancel stops the build on both workers; the worker running the
 *   build killed with SIGKILL, the other one takes it over and completes it (BullMQ's stalled-job
 *   check; the dead process's locks and claims are taken over at once on the same host).
 */
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { App } from '../src/app.js';
import { DEFAULT_MODEL_DIR } from '../src/config.js';
import { FILES } from '../src/collections/store.js';
import { startRedis, stopProcess, type RedisProcess } from '../bench/lib/processes.js';
import { buildTestApp } from './helpers/app.js';
import { startWorker, type WorkerProcess } from './helpers/worker-process.js';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'collections-jobs-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));

const SHARDING = { COLLECTION_SHARD: '3', COLLECTION_BATCH: '2' };

/** Builds the app with variables set only while its plugins read them. */
async function appWith(dataDir: string, env: Record<string, string> = {}, redisUrl?: string): Promise<App> {
  const all = { WORD_INDEX_AUTOBUILD: 'false', COLLECTION_COLUMN_BLOCK: '4', ...SHARDING, ...env };
  const saved = Object.fromEntries(Object.keys(all).map((name) => [name, process.env[name]]));
  Object.assign(process.env, all);
  try {
    return await buildTestApp({ modelDir: DEFAULT_MODEL_DIR, dataDir, redisUrl });
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

async function picture(i: number): Promise<Buffer> {
  const hue = (i * 47) % 360;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${64 + (i % 5) * 8}" height="64">
    <rect width="100%" height="100%" fill="hsl(${hue},70%,45%)"/>
    <circle cx="${16 + ((i * 7) % 40)}" cy="${20 + ((i * 11) % 30)}" r="${8 + (i % 12)}" fill="hsl(${(hue + 150) % 360},80%,55%)"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/**
 * Uploads enough that a one-worker build is still running when a test stops or cancels it: the cancel
 * has come after 35 of 40 images were indexed on a busy machine, and a build of 24 has finished
 * between the first indexed shard and the stop.
 */
const LONG_BUILD = 120;
const pictures = await Promise.all(Array.from({ length: LONG_BUILD }, (_, i) => picture(i)));

interface Upload {
  name: string;
  bytes: Buffer;
  category?: string;
}

/** The uploads of a build: `count` pictures, a file that is not an image, and a duplicate. */
function uploadsOf(count: number): Upload[] {
  const uploads: Upload[] = pictures
    .slice(0, count)
    .map((bytes, i) => ({ name: `p${i}.png`, bytes, category: `c${i % 3}` }));
  uploads.splice(2, 0, { name: 'notes.txt', bytes: Buffer.from('not an image') });
  uploads.push({ name: 'again.png', bytes: pictures[1] });
  return uploads;
}

function multipart(uploads: Upload[]): { payload: Buffer; headers: Record<string, string> } {
  const boundary = 'collections-jobs-boundary';
  const chunks: Buffer[] = [];
  const part = (field: string, value: Buffer | string, filename?: string) => {
    const file = filename === undefined ? '' : `; filename="${filename}"`;
    chunks.push(
      Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${field}"${file}\r\n\r\n`),
      Buffer.isBuffer(value) ? value : Buffer.from(value),
      Buffer.from('\r\n'),
    );
  };
  for (const upload of uploads) {
    part('category', upload.category ?? '');
    part('image', upload.bytes, upload.name);
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    payload: Buffer.concat(chunks),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  };
}

async function createAndUpload(app: App, name: string, uploads: Upload[]): Promise<string> {
  const created = await app.inject({ method: 'POST', url: '/v1/collections', payload: { name } });
  if (created.statusCode !== 201) throw new Error(created.body);
  const sent = await app.inject({
    method: 'POST',
    url: `/v1/collections/${name}/images`,
    ...multipart(uploads),
  });
  if (sent.statusCode !== 202) throw new Error(sent.body);
  return (sent.json() as { jobId: string }).jobId;
}

async function until<T>(probe: () => Promise<T | undefined | false>, what: string, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const job = async (app: App, id: string) => (await app.inject({ url: `/v1/jobs/${id}` })).json();
const collection = async (app: App, id: string) =>
  (await app.inject({ url: `/v1/collections/${id}` })).json();
const finished = (app: App, id: string) =>
  until(async () => {
    const view = await job(app, id);
    return ['completed', 'failed', 'cancelled'].includes(view.state) ? view : undefined;
  }, `job ${id} to end`);

/** Server-Sent Events of a job, parsed, until the stream closes. */
async function events(base: string, id: string): Promise<{ event: string; data: Record<string, unknown> }[]> {
  const text = await (await fetch(`${base}/v1/jobs/${id}/events`)).text();
  return [...text.matchAll(/^event: (.*)\ndata: (.*)$/gm)].map((match) => ({
    event: match[1],
    data: JSON.parse(match[2]) as Record<string, unknown>,
  }));
}

/** The activations of a collection's `images` rows: means, maxima, argmax and embeddings, as bytes. */
async function activations(dataDir: string, id: string) {
  const dir = path.join(dataDir, 'collections', id);
  const manifest = JSON.parse(await readFile(path.join(dir, FILES.manifest), 'utf8'));
  const { images } = manifest;
  const { neurons: C, embedDim: D } = manifest.model;
  const rows = async (file: string, bytes: number) =>
    (await readFile(path.join(dir, file))).subarray(0, images * bytes);
  return {
    images,
    means: await rows(FILES.means, C * 4),
    maxima: await rows(FILES.maxima, C * 4),
    argmax: await rows(FILES.argmax, C * 2),
    embeddings: await rows(FILES.embeddings, D * 4),
    categories: await rows(FILES.categories, 4),
    names: (await readFile(path.join(dir, FILES.meta), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => (JSON.parse(line) as { name: string }).name),
  };
}

function sameActivations(t: Test, actual: Awaited<ReturnType<typeof activations>>, expected: typeof actual) {
  t.equal(actual.images, expected.images, 'as many images');
  t.same(actual.names, expected.names, 'the same images in the same rows');
  for (const key of ['means', 'maxima', 'argmax', 'embeddings', 'categories'] as const) {
    t.ok(actual[key].equals(expected[key]), `${key}: byte for byte equal`);
  }
}

const oneDir = path.join(tmp, 'one');
let app = await appWith(oneDir);
t.teardown(() => app.close());
await app.listen({ port: 0, host: '127.0.0.1' });
let base = `http://127.0.0.1:${(app.server.address() as net.AddressInfo).port}`;
let reference: Awaited<ReturnType<typeof activations>>;

t.test('a build is a job: progress over SSE, its view, and the collection names it', async (t) => {
  const uploads = uploadsOf(24);
  const jobId = await createAndUpload(app, 'one-worker', uploads);
  t.match(jobId, /^build-/, 'a collection-build job');
  const stream = await events(base, jobId);
  t.equal(stream.at(-1)?.event, 'completed', 'the stream ends with the build');
  const progress = stream.filter((event) => event.event === 'progress');
  t.ok(progress.length >= 1, `${progress.length} progress events`);
  t.ok(
    progress.every(
      (event) => event.data.kind === 'collection-build' && event.data.collection === 'one-worker',
    ),
    'progress events name the build and its collection',
  );
  const dones = progress.map((event) => event.data.done as number);
  t.same(
    dones,
    [...dones].sort((a, b) => a - b),
    'uploads done never go back',
  );
  const view = await job(app, jobId);
  t.match(view, {
    id: jobId,
    kind: 'collection-build',
    state: 'completed',
    progress: {
      collection: 'one-worker',
      done: 26,
      total: 26,
      indexed: 24,
      duplicates: 1,
      skipped: [{ name: 'notes.txt', reason: /not a decodable image/ }],
      shards: { total: 9, committed: 9, running: 0 },
    },
    result: { collection: 'one-worker', images: 24, done: 26, skipped: 1, duplicates: 1 },
  });
  t.ok(view.progress.imagesPerSecond > 0, `${view.progress.imagesPerSecond.toFixed(1)} uploads/s`);
  t.equal(view.result.workers.length, 1, 'one process computed every shard');
  t.match(await collection(app, 'one-worker'), {
    images: 24,
    complete: true,
    build: { jobId, state: 'completed', done: 26, total: 26 },
  });
  reference = await activations(oneDir, 'one-worker');
  t.equal(reference.images, 24);
});

/** The activations of uploadsOf(LONG_BUILD) built without interruption, once, by a service of their own. */
let longBuilt: Promise<Awaited<ReturnType<typeof activations>>> | undefined;
function longBuild(): Promise<Awaited<ReturnType<typeof activations>>> {
  longBuilt ??= (async () => {
    const dataDir = path.join(tmp, 'uninterrupted');
    const other = await appWith(dataDir);
    try {
      await createAndUpload(other, 'whole', uploadsOf(LONG_BUILD));
      await other.collections.settled('whole');
      return await activations(dataDir, 'whole');
    } finally {
      await other.close();
    }
  })();
  return longBuilt;
}

t.test('cancel through the job API: owner only; what was indexed stays, the rest is dropped', async (t) => {
  // LONG_BUILD uploads, 3 to a shard: the build is still running when the cancel comes.
  const jobId = await createAndUpload(app, 'cancelled', uploadsOf(LONG_BUILD));
  await until(async () => (await job(app, jobId)).progress.indexed >= 2 || undefined, 'a shard indexed');
  const other = await app.inject({ method: 'DELETE', url: `/v1/jobs/${jobId}`, remoteAddress: '10.9.8.7' });
  t.equal(other.statusCode, 403, 'another client may not cancel it');
  t.match(other.json().message, /collection's owner/);
  const cancel = await app.inject({ method: 'DELETE', url: `/v1/jobs/${jobId}` });
  t.equal(cancel.statusCode, 200, cancel.body);
  t.match(cancel.json(), { id: jobId, kind: 'collection-build', state: 'cancelled', stopped: true });
  await app.collections.settled('cancelled');
  const view = await collection(app, 'cancelled');
  t.match(view, { pending: 0, complete: true, build: { jobId, state: 'cancelled', total: LONG_BUILD + 2 } });
  t.ok(
    view.images >= 2 && view.images < LONG_BUILD,
    `indexed before the cancel: ${view.images} of ${LONG_BUILD}`,
  );
  t.equal(view.build.done, view.images + 1, 'done counts the complete shards (with notes.txt)');
  // The rows kept are those of complete shards: equal to the first rows of the same uploads built
  // without a cancel.
  const kept = await activations(oneDir, 'cancelled');
  const whole = await longBuild();
  for (const key of ['means', 'maxima', 'argmax', 'embeddings'] as const) {
    t.ok(kept[key].equals(whole[key].subarray(0, kept[key].length)), `${key} of the kept rows`);
  }
  t.same(kept.names, whole.names.slice(0, kept.images), 'the same images in the same rows');
  t.same(
    (await events(base, jobId)).map((event) => event.event),
    ['cancelled'],
  );
});

t.test('settled() waits for uploads staged while it polls (their build not yet submitted)', async (t) => {
  await createAndUpload(app, 'staged', uploadsOf(3));
  await app.collections.settled('staged');
  t.match(await collection(app, 'staged'), { images: 3, pending: 0, build: { state: 'completed' } });
  // An upload under way, as addImages does it: its files staged, its build submitted after.
  const { store } = app.collections;
  const entries = [];
  for (const [i, bytes] of pictures.slice(3, 7).entries()) {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    await store.putImage('staged', sha256, bytes);
    entries.push({ name: `later${i}.png`, category: null, caption: null, sha256, bytes: bytes.length });
  }
  await store.appendPending('staged', entries);
  // settled() polls while the build is submitted: it answered at once (the last build had
  // completed and no process held the build's lock), with the staged uploads not indexed.
  const settled = app.collections.settled('staged');
  await app.collections.startBuild('staged');
  await settled;
  t.match(await collection(app, 'staged'), { images: 7, pending: 0 }, 'the staged uploads indexed');
  await until(async () => {
    const view = await collection(app, 'staged');
    return view.build.state === 'completed' && (await job(app, view.build.jobId)).state === 'completed';
  }, 'the build to end');
  // Staged uploads that no submission follows (an upload that failed after staging) are built too.
  const more = pictures[7];
  const sha256 = createHash('sha256').update(more).digest('hex');
  await store.putImage('staged', sha256, more);
  await store.appendPending('staged', [
    { name: 'orphan.png', category: null, caption: null, sha256, bytes: more.length },
  ]);
  await app.collections.settled('staged');
  t.match(await collection(app, 'staged'), { images: 8, pending: 0, build: { state: 'completed' } });
});

t.test('stopped mid-build and started again: the build resumes where it stopped, same job', async (t) => {
  const jobId = await createAndUpload(app, 'resumed', uploadsOf(LONG_BUILD));
  await until(async () => (await job(app, jobId)).progress.indexed >= 3 || undefined, 'a shard indexed');
  await app.close();
  const stopped = JSON.parse(
    await readFile(path.join(oneDir, 'collections', 'resumed', FILES.manifest), 'utf8'),
  ) as { images: number; build: { state: string; jobId: string } };
  t.match(stopped.build, { state: 'queued', jobId }, 'left to resume');
  t.ok(stopped.images >= 3 && stopped.images < LONG_BUILD, `${stopped.images} images indexed at the stop`);

  app = await appWith(oneDir);
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as net.AddressInfo).port}`;
  const done = await finished(app, jobId);
  t.match(done, { id: jobId, state: 'completed', result: { images: LONG_BUILD } }, 'the same job, completed');
  t.match(await collection(app, 'resumed'), {
    images: LONG_BUILD,
    build: { jobId, state: 'completed', done: LONG_BUILD + 2, resumedFrom: stopped.images },
  });
  sameActivations(t, await activations(oneDir, 'resumed'), await longBuild());
});

t.test('with Redis, two worker processes share the shards and build the same rows', async (t) => {
  const started: { redis?: RedisProcess; app?: App } = {};
  const workers: WorkerProcess[] = [];
  t.teardown(async () => {
    await Promise.all(workers.map((worker) => stopProcess(worker.child, 'SIGKILL')));
    await started.app?.close();
    await started.redis?.stop();
  });
  started.redis = await startRedis();
  const redisUrl = started.redis.url;
  const dataDir = path.join(tmp, 'two');
  const env = {
    ...process.env,
    ...SHARDING,
    REDIS_URL: redisUrl,
    MODEL_DIR: DEFAULT_MODEL_DIR,
    DATA_DIR: dataDir,
    ORT_PROVIDERS: 'cpu',
    ORT_INTRA_OP_THREADS: '1',
    WORKER_LOCK_MS: '5000',
  };
  workers.push(startWorker(env), startWorker(env));
  const cluster = (started.app = await appWith(dataDir, { WORKER_IN_PROCESS: 'false' }, redisUrl));
  await cluster.listen({ port: 0, host: '127.0.0.1' });
  const clusterBase = `http://127.0.0.1:${(cluster.server.address() as net.AddressInfo).port}`;
  await until(
    async () => workers.every((worker) => worker.lines.some((line) => line.msg === 'worker ready')),
    'both workers ready',
  );

  t.test('both workers take shards; the rows are those of one worker', async (t) => {
    const jobId = await createAndUpload(cluster, 'two-workers', uploadsOf(24));
    const stream = await events(clusterBase, jobId);
    t.equal(stream.at(-1)?.event, 'completed');
    t.ok(
      stream.some((event) => event.event === 'progress' && event.data.kind === 'collection-build'),
      'progress events over SSE',
    );
    const view = await job(cluster, jobId);
    t.match(view, { kind: 'collection-build', state: 'completed', result: { images: 24, done: 26 } });
    t.equal(view.result.workers.length, 2, `shards computed by ${view.result.workers.join(' and ')}`);
    const computed = workers.map(
      (worker) =>
        worker.lines.filter((line) => line.kind === 'collection-shard' && line.result?.computed).length,
    );
    t.comment(`shard jobs computed per worker: ${computed.join(', ')} (the build computes shards too)`);
    sameActivations(t, await activations(dataDir, 'two-workers'), reference);
    t.match(await collection(cluster, 'two-workers'), { images: 24, build: { jobId, state: 'completed' } });
  });

  t.test('a cancel stops the build on every worker', async (t) => {
    // Enough uploads (one request takes at most 256 files) that two idle workers cannot finish them
    // between the first shard and the cancel (40 could: the build had completed when the cancel came,
    // in a CI run on idle cores).
    const many = await Promise.all(Array.from({ length: 250 }, (_, i) => picture(i)));
    const uploads = many.map((bytes, i) => ({ name: `m${i}.png`, bytes }));
    const jobId = await createAndUpload(cluster, 'two-cancelled', uploads);
    await until(
      async () => (await job(cluster, jobId)).progress.indexed >= 2 || undefined,
      'a shard indexed',
    );
    const cancel = await cluster.inject({ method: 'DELETE', url: `/v1/jobs/${jobId}` });
    t.match(
      cancel.json(),
      { state: 'cancelled', stopped: true },
      `${cancel.statusCode} ${cancel.body.slice(0, 600)}`,
    );
    const view = await collection(cluster, 'two-cancelled');
    t.match(view, { pending: 0, build: { jobId, state: 'cancelled' } });
    // Shards in flight stop at their next batch and commit nothing after the cancel.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const later = await collection(cluster, 'two-cancelled');
    t.equal(later.images, view.images, `${view.images} images indexed, no more after the cancel`);
    t.ok(view.images < 250, `${view.images} of 250 indexed`);
    t.equal((await job(cluster, jobId)).state, 'cancelled');
  });

  t.test('the worker running the build killed (SIGKILL): the other worker finishes it', async (t) => {
    const jobId = await createAndUpload(cluster, 'two-killed', uploadsOf(40));
    const runner = await until(
      async () =>
        workers.find((worker) =>
          worker.lines.some((line) => line.msg === 'job started' && line.job === jobId),
        ),
      'a worker to take the build',
    );
    await until(
      async () => (await job(cluster, jobId)).progress.indexed >= 3 || undefined,
      'a shard indexed',
    );
    runner.child.kill('SIGKILL');
    const done = await finished(cluster, jobId);
    t.match(done, { state: 'completed', result: { images: 40, done: 42 } }, 'completed by the other worker');
    const survivor = workers.find((worker) => worker !== runner)!;
    t.ok(
      survivor.lines.some((line) => line.msg === 'job started' && line.job === jobId),
      'the other worker took the build over',
    );
    t.match(await collection(cluster, 'two-killed'), { images: 40, build: { jobId, state: 'completed' } });
    // Shards 0–7 hold the same uploads as the one-worker build's: their 23 images, byte for byte.
    const rows = await activations(dataDir, 'two-killed');
    t.same(rows.names.slice(0, 23), reference.names.slice(0, 23));
    for (const key of ['means', 'maxima', 'argmax', 'embeddings'] as const) {
      const width = reference[key].length / reference.images;
      t.ok(rows[key].subarray(0, 23 * width).equals(reference[key].subarray(0, 23 * width)), `${key}`);
    }
  });
});
