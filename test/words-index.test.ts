/**
 * Building the word index on a real model (the embedded toy model, else a tiny random one): rows
 * equal the trunk's spatial means minus their mean, an aborted build resumes to the same index as
 * an uninterrupted one, and a second server loads the index from the real Redis instead of
 * rebuilding.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createCache } from '../src/cache/index.js';
import { ClipModel } from '../src/clip/clip-model.js';
import { spatialMeans } from '../src/clip/spatial-means.js';
import { DEFAULT_MODEL_DIR, loadConfig } from '../src/config.js';
import { buildWordIndex, type BuildProgress } from '../src/words/index-builder.js';
import { IndexStore } from '../src/words/index-store.js';
import { modelRenderer } from '../src/words/render.js';
import { RenderPool } from '../src/words/render-pool.js';
import { WordService } from '../src/words/service.js';
import { loadWordSettings } from '../src/words/settings.js';
import { makeVocabulary, parseWordList } from '../src/words/vocabulary.js';
import { exportTinyModel } from './helpers/tiny-model.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

const modelDir = existsSync(path.join(DEFAULT_MODEL_DIR, 'clip.json'))
  ? DEFAULT_MODEL_DIR
  : await exportTinyModel();
const config = { ...loadConfig({}), executionProviders: ['cpu' as const], intraOpThreads: 1, maxBatch: 16 };
const model = await ClipModel.load(modelDir, config);
t.teardown(() => model.release());

const wordsFile = path.join(modelDir, 'words.txt');
const words = existsSync(wordsFile)
  ? parseWordList(await readFile(wordsFile, 'utf8')).slice(0, 200)
  : Array.from({ length: 200 }, (_, i) => `word${i}`);
const vocabulary = makeVocabulary(words, 'custom');
const render = modelRenderer(model);
const tmp = await mkdtemp(path.join(os.tmpdir(), 'words-index-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));

const storeIn = (dir: string, cache?: ReturnType<typeof createCache>) =>
  new IndexStore(path.join(tmp, dir), model.sha256, vocabulary.sha256, cache);
const common = { model, vocabulary, render, batchSize: 16, chunkSize: 48, lexical: false as const };

const reference = await buildWordIndex({ ...common, store: storeIn('whole') });

t.test('rows are the spatial means of the trunk, centred on their mean', async (t) => {
  const { index, header } = reference;
  t.equal(index.rows, vocabulary.words.length);
  t.equal(index.columns, model.neuronCount);
  t.same(header.words, vocabulary.words);
  for (const i of [0, 77, 199]) {
    const pixels = new Float32Array(model.pixelsPerImage);
    await render(vocabulary.words[i], pixels, 0);
    const [maps] = await model.neuronMaps([pixels]);
    const expected = spatialMeans(maps, model.neuronCount);
    const row = index.row(i);
    let worst = 0;
    for (let j = 0; j < index.columns; j++)
      worst = Math.max(worst, Math.abs(row[j] + index.mean[j] - expected[j]));
    t.ok(worst < 1e-5, `row ${i}: max |difference| ${worst}`);
  }
  const reread = await storeIn('whole').readFromDisk();
  t.same(
    Array.from(reread?.index.centred.subarray(0, 1000) ?? []),
    Array.from(index.centred.subarray(0, 1000)),
  );
  t.notOk(existsSync(storeIn('whole').file('.partial.f32')), 'the partial file is removed');
});

t.test('an aborted build resumes where it stopped and equals an uninterrupted build', async (t) => {
  const store = storeIn('resumed');
  const abort = new AbortController();
  const seen: BuildProgress[] = [];
  await t.rejects(
    buildWordIndex({
      ...common,
      store,
      signal: abort.signal,
      onProgress: (progress) => {
        seen.push(progress);
        if (progress.done >= 100) abort.abort();
      },
    }),
  );
  const partial = JSON.parse(await readFile(store.file('.partial.json'), 'utf8')) as { done: number };
  t.ok(partial.done >= 96 && partial.done % 48 === 0, `kept ${partial.done} rows`);
  t.notOk(store.exists(), 'no final index yet');
  t.ok(seen.some((progress) => progress.wordsPerSecond > 0));

  const resumed: BuildProgress[] = [];
  const result = await buildWordIndex({ ...common, store, onProgress: (p) => resumed.push(p) });
  t.equal(resumed[0].resumedFrom, partial.done, 'resumed from the recorded chunk');
  t.equal(resumed.at(-1)?.phase, 'done');
  let worst = 0;
  for (let i = 0; i < result.index.centred.length; i++) {
    worst = Math.max(worst, Math.abs(result.index.centred[i] - reference.index.centred[i]));
  }
  t.ok(worst <= 1e-6, `max |resumed − uninterrupted| = ${worst}`);
  t.same(Array.from(result.index.mean), Array.from(reference.index.mean));
});

t.test('a second server loads the index from Redis instead of rebuilding', async (t) => {
  const keyPrefix = `mmn-test-words-${process.pid}-${Date.now()}:`;
  const cache = createCache({ redisUrl: REDIS_URL, ttlSeconds: 600, keyPrefix, logger: silent });
  t.teardown(async () => {
    await cache.flush();
    await cache.close();
  });
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.ok(cache.status().ok, 'Redis is reachable');
  const built = await buildWordIndex({ ...common, store: storeIn('server-a', cache) });
  const settings = { ...loadWordSettings({}), autoBuild: 'false' as const };
  const second = new WordService({
    model,
    vocabulary,
    render,
    dataDir: path.join(tmp, 'server-b'),
    settings,
    cache,
    log: silent,
  });
  t.notOk(second.store.exists(), 'server B has nothing on disk');
  t.ok(await second.load(), 'server B finds the index');
  t.ok(second.store.exists(), 'and keeps a copy on disk');
  const { index } = await second.require();
  t.same(Array.from(index.centred.subarray(0, 2000)), Array.from(built.index.centred.subarray(0, 2000)));
  t.same(index.words, built.index.words);
});

t.test('a word the rasteriser refuses gets a NaN row and never ranks', async (t) => {
  const refused = 'x'.repeat(150);
  const small = makeVocabulary([...vocabulary.words.slice(0, 40), refused], 'custom');
  const store = new IndexStore(path.join(tmp, 'refused'), model.sha256, small.sha256);
  const { header, index } = await buildWordIndex({ ...common, vocabulary: small, store, lexical: {} });
  t.same(header.unrenderable, [refused]);
  t.ok(Number.isNaN(index.row(40)[0]), 'its row is NaN');
  t.ok(header.lexical && header.lexical.words === 40, 'lexical detection leaves it out');
  t.ok(header.lexical?.score.every((score) => Number.isFinite(score)));
  const hits = await index.nearest(index.row(0), 40);
  t.equal(hits.length, 40);
  t.notOk(hits.some((hit) => hit.word === refused));
  const reference40 = index.row(0).slice();
  t.ok(
    reference40.every((value) => Number.isFinite(value)),
    'μ ignores the NaN row',
  );
});

t.test('drawing on render threads gives the same index', async (t) => {
  const { image_size: imageSize, mean, std } = model.directory.manifest;
  const pool = new RenderPool({ imageSize, mean, std }, 2);
  t.teardown(() => pool.close());
  const { index } = await buildWordIndex({
    ...common,
    store: storeIn('pooled'),
    renderBatch: (batch) => pool.render(batch),
    depth: 4,
  });
  let worst = 0;
  for (let i = 0; i < index.centred.length; i++) {
    worst = Math.max(worst, Math.abs(index.centred[i] - reference.index.centred[i]));
  }
  t.equal(worst, 0, 'identical rows');
  const refused = await pool.render(['red', 'x'.repeat(150)]);
  t.same(refused.failed, [1], 'a refused word is reported, not thrown');
});
