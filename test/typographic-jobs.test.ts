/**
 * Typographic attacks on a collection's images, and the `typographic-attack` job kind on BullMQ: a
 * throwaway Redis, one `src/bin/worker.ts` process (the server works no jobs: WORKER_IN_PROCESS=false),
 * both on one DATA_DIR, on the embedded model. The worker builds a small collection of solid colours;
 * then
 *   - a sample (`collection` + `sample`) is drawn deterministically (same seed, same images; only the
 *     categories asked), its rows equal an upload of the same originals with the categories among the
 *     labels as true labels (the reference: the bytes this test uploaded);
 *   - a large upload and a large sample become jobs that the worker runs (its log names them), whose
 *     rows equal the server's own direct answers for the same images (uploads, or imageIds);
 *   - bad picks are 4xx naming what is allowed.
 * No lexical set is needed (explain 0, ablation by ids), so no word index is built.
 */
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { App } from '../src/app.js';
import { DEFAULT_MODEL_DIR } from '../src/config.js';
import { spawnOwned, startRedis, stopProcess, type RedisProcess } from '../bench/lib/processes.js';
import { buildTestApp } from './helpers/app.js';
import { repoRoot } from './helpers/tiny-model.js';

const COLOURS = ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink', 'brown'];
/** tools/toyworld/world.py's COLOURS. */
const WORLD_INK: Record<string, string> = {
  red: '#d7191e',
  orange: '#f5870f',
  yellow: '#fadc19',
  green: '#23a02d',
  blue: '#194bd7',
  purple: '#7d23a5',
  pink: '#f57db9',
  brown: '#7d4b23',
};
const LABELS = COLOURS.slice(0, 7); // brown is no label: its images have no true label

interface Picture {
  name: string;
  category: string;
  bytes: Buffer;
}

/** 40 solid pictures, 5 per colour, each of its own size (identical bytes would be stored once). */
async function pictures(): Promise<Picture[]> {
  return Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const colour = COLOURS[i % 8];
      const hex = WORLD_INK[colour];
      const [r, g, b] = [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
      const bytes = await sharp({
        create: { width: 64 + i, height: 64, channels: 3, background: { r, g, b } },
      })
        .png()
        .toBuffer();
      return { name: `${colour}-${i}.png`, category: colour, bytes };
    }),
  );
}

function multipart(pictures: readonly Picture[]) {
  const boundary = 'typographic-jobs-boundary';
  const chunks: Buffer[] = [];
  for (const picture of pictures) {
    chunks.push(
      Buffer.from(
        `--${boundary}\r\ncontent-disposition: form-data; name="category"\r\n\r\n${picture.category}\r\n` +
          `--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="${picture.name}"\r\ncontent-type: image/png\r\n\r\n`,
      ),
      picture.bytes,
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    payload: Buffer.concat(chunks),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  };
}

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface Row {
  imageId?: number;
  category?: string | null;
  trueLabel?: string;
  before: { probabilities: number[]; predicted: string };
  after: { probabilities: number[]; predicted: string };
  defended?: { after: { predicted: string } };
  eligible: boolean;
  success: boolean;
}

t.test(
  'attacks on collections, and attack jobs on a BullMQ worker',
  { skip: existsSync(path.join(DEFAULT_MODEL_DIR, 'clip.json')) ? false : 'no embedded model' },
  async (t) => {
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'typographic-jobs-'));
    const dataDir = path.join(tmp, 'data');
    const started: { redis?: RedisProcess; app?: App; worker?: ChildProcess } = {};
    t.teardown(async () => {
      if (started.worker) await stopProcess(started.worker, 'SIGKILL');
      await started.app?.close();
      await started.redis?.stop();
      await rm(tmp, { recursive: true, force: true });
    });
    started.redis = await startRedis();
    const redisUrl = started.redis.url;
    const worker = (started.worker = spawnOwned(
      process.execPath,
      ['--import', 'tsx', path.join(repoRoot, 'src/bin/worker.ts')],
      {
        cwd: repoRoot,
        env: {
          ...process.env,
          REDIS_URL: redisUrl,
          MODEL_DIR: DEFAULT_MODEL_DIR,
          DATA_DIR: dataDir,
          ORT_PROVIDERS: 'cpu',
          ORT_INTRA_OP_THREADS: '1',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    ));
    let log = '';
    worker.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const saved = { ...process.env };
    Object.assign(process.env, { WORKER_IN_PROCESS: 'false', WORD_INDEX_AUTOBUILD: 'false' });
    let app: App;
    try {
      app = started.app = await buildTestApp({ modelDir: DEFAULT_MODEL_DIR, dataDir, redisUrl });
    } finally {
      for (const name of ['WORKER_IN_PROCESS', 'WORD_INDEX_AUTOBUILD']) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
    }
    await until(async () => (log.includes('worker ready') ? true : undefined), 'the worker');
    const attack = (payload: Record<string, unknown>) =>
      app.inject({ method: 'POST', url: '/v1/typographic/attack', payload });
    const jobResult = async (jobId: string) =>
      until(async () => {
        const view = (await app.inject({ url: `/v1/jobs/${jobId}` })).json();
        if (view.state === 'failed' || view.state === 'cancelled') throw new Error(JSON.stringify(view));
        return view.state === 'completed' ? view : undefined;
      }, `job ${jobId}`);
    const settings = {
      text: 'green',
      size: 0.25,
      box: 'white',
      labels: LABELS,
      templates: ['{}', 'the colour {}', 'a {} patch'],
      ablate: [3, 5, 8],
      explain: 0,
    };

    // The collection, built by the worker.
    const all = await pictures();
    t.equal(
      (await app.inject({ method: 'POST', url: '/v1/collections', payload: { name: 'colours' } })).statusCode,
      201,
    );
    const upload = await app.inject({
      method: 'POST',
      url: '/v1/collections/colours/images',
      ...multipart(all),
    });
    t.equal(upload.statusCode, 202, upload.body);
    const built = await jobResult(upload.json().jobId);
    t.equal(built.result.images, 40, 'the worker indexed the 40 pictures');
    const metas = await Promise.all(
      all.map(async (_, id) => (await app.inject({ url: `/v1/collections/colours/images/${id}` })).json()),
    );
    const byId = (id: number) => all.find((picture) => picture.name === metas[id].name)!;

    t.test('a sample: deterministic, in its categories, equal to an upload of the originals', async (t) => {
      const sample = { count: 6, seed: 7, categories: ['red', 'blue', 'brown'] };
      const first = await attack({ ...settings, collection: 'colours', sample });
      t.equal(first.statusCode, 200, first.body);
      const rows: Row[] = first.json().images;
      const ids = rows.map((row) => row.imageId!);
      t.equal(new Set(ids).size, 6, 'six distinct images');
      t.same(
        ids,
        [...ids].sort((a, b) => a - b),
        'in ascending order',
      );
      t.ok(
        rows.every(
          (row, i) =>
            ['red', 'blue', 'brown'].includes(row.category!) && row.category === metas[ids[i]].category,
        ),
        'all of the categories asked, as the collection has them',
      );
      const again = await attack({ ...settings, collection: 'colours', sample });
      t.same(
        again.json().images.map((row: Row) => row.imageId),
        ids,
        'the same seed draws the same images',
      );
      const other = await attack({ ...settings, collection: 'colours', sample: { ...sample, seed: 8 } });
      t.notSame(
        other.json().images.map((row: Row) => row.imageId),
        ids,
        'another seed, another draw',
      );

      // The reference: the bytes this test uploaded, sent as images, with the true labels spelled out.
      const truth = rows.map((row) => (LABELS.includes(row.category!) ? row.category! : null));
      const labelled = ids.filter((_, i) => truth[i] !== null);
      const uploaded = await attack({
        ...settings,
        images: labelled.map((id) => byId(id).bytes.toString('base64')),
        trueLabels: truth.filter((label) => label !== null),
      });
      t.equal(uploaded.statusCode, 200, uploaded.body);
      const direct: Row[] = uploaded.json().images;
      const fromCollection = rows.filter((_, i) => truth[i] !== null);
      t.same(
        fromCollection.map(({ imageId: _i, category: _c, ...row }) => row),
        direct,
        'the rows of the labelled images equal those of their upload',
      );
      t.ok(
        rows.every((row, i) =>
          truth[i] === null ? row.trueLabel === undefined : row.trueLabel === truth[i],
        ),
        'a category among the labels is the true label; brown is none',
      );
      const summary = first.json().summary;
      t.equal(summary.cleanAccuracy.n, labelled.length, 'clean accuracy over the labelled images');
      t.equal(
        summary.cleanAccuracy.successes,
        uploaded.json().summary.cleanAccuracy.successes,
        'the same clean accuracy as the upload',
      );
      t.ok(summary.cleanAccuracy.successes >= labelled.length - 1, 'solid colours are mostly recognised');
    });

    t.test('imageIds pick images; bad picks are 4xx naming what is allowed', async (t) => {
      const picked = await attack({ ...settings, collection: 'colours', imageIds: [5, 0] });
      t.equal(picked.statusCode, 200, picked.body);
      t.same(
        picked.json().images.map((row: Row) => row.imageId),
        [5, 0],
        'in the order asked',
      );
      const base = { ...settings, collection: 'colours' };
      const cases: [string, Record<string, unknown>, number, RegExp][] = [
        ['unknown collection', { ...base, collection: 'nope', imageIds: [0] }, 404, /collection "nope"/],
        [
          'not a collection id',
          { ...base, collection: '../colours', imageIds: [0] },
          400,
          /collection must be a collection id: 1 to 64 lower-case letters/,
        ],
        ['image out of range', { ...base, imageIds: [40] }, 404, /image 40 is not indexed.*ids 0 to 39/],
        [
          'sample too large',
          { ...base, sample: { count: 41 } },
          400,
          /sample.count 41 is more than the 40 indexed/,
        ],
        [
          'unknown category',
          { ...base, sample: { count: 2, categories: ['cyan'] } },
          400,
          /"cyan" is not a category of collection "colours" \("red", "orange"/,
        ],
        ['neither pick', base, 400, /pick its images with imageIds or with sample/],
        ['both picks', { ...base, imageIds: [0], sample: { count: 1 } }, 400, /imageIds or with sample/],
        ['a pick without a collection', { ...settings, sample: { count: 1 } }, 400, /name it in collection/],
        ['uploads and a collection', { ...base, imageIds: [0], image: 'aGVsbG8=' }, 400, /not both/],
        [
          'trueLabels with a collection',
          { ...base, imageIds: [0], trueLabels: ['red'] },
          400,
          /its categories/,
        ],
        [
          'huge sample',
          { ...base, sample: { count: 5000 } },
          413,
          /5000 images: an attack takes at most 4096/,
        ],
        ['sample of 0', { ...base, sample: { count: 0 } }, 400, /count must be/],
      ];
      for (const [name, payload, status, message] of cases) {
        const response = await attack(payload);
        t.equal(response.statusCode, status, `${name}: ${response.body}`);
        t.match(response.json().message, message, name);
      }
    });

    t.test('large attacks are jobs the worker runs, equal to the server’s direct answers', async (t) => {
      // 34 uploads: a job; the same images in two direct requests (32 + 2), computed by the server.
      const images = all.slice(0, 34).map((picture) => picture.bytes.toString('base64'));
      const queued = await attack({ ...settings, images });
      t.equal(queued.statusCode, 202, queued.body);
      // A sample of 34: a job whose worker reads the originals from DATA_DIR.
      const sample = { count: 34, seed: 1 };
      const queuedSample = await attack({ ...settings, collection: 'colours', sample });
      t.equal(queuedSample.statusCode, 202, queuedSample.body);
      t.equal(queuedSample.json().images, 34);
      const [done, doneSample] = [
        await jobResult(queued.json().jobId),
        await jobResult(queuedSample.json().jobId),
      ];
      for (const id of [queued.json().jobId, queuedSample.json().jobId]) {
        t.ok(log.includes(`"job":"${id}"`), `the worker ran ${id}`);
      }
      t.same(done.progress, { done: 34, total: 34 });

      const direct = async (payloads: Record<string, unknown>[]) =>
        (await Promise.all(payloads.map(async (payload) => (await attack(payload)).json().images))).flat();
      const uploads = await direct([
        { ...settings, images: images.slice(0, 32) },
        { ...settings, images: images.slice(32) },
      ]);
      t.same(done.result.images, uploads, 'the uploads: the worker’s rows are the server’s');

      const ids: number[] = doneSample.result.images.map((row: Row) => row.imageId);
      t.equal(new Set(ids).size, 34);
      const picked = await direct([
        { ...settings, collection: 'colours', imageIds: ids.slice(0, 32) },
        { ...settings, collection: 'colours', imageIds: ids.slice(32) },
      ]);
      t.same(
        doneSample.result.images,
        picked,
        'the sample: the worker’s rows are the server’s for those ids',
      );
      const summary = doneSample.result.summary;
      const labelled = picked.filter((row: Row) => row.trueLabel !== undefined).length;
      t.equal(summary.cleanAccuracy.n, labelled, 'clean accuracy over the images whose category is a label');
      t.ok(labelled < 34, 'brown images have no true label');
      t.equal(doneSample.result.defence.ablated, 3);
    });
  },
);
