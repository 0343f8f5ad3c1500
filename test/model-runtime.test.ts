/**
 * The model runtime: start-up validation of a model directory (one clear message naming the file and
 * the problem), micro-batching (padding only to the longest row of a batch changes nothing), the
 * provider fallback, and the cache backends seen through /health.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ClipModel } from '../src/clip/clip-model.js';
import { loadModelDirectory, ModelDirectoryError } from '../src/clip/model-directory.js';
import { buildTestApp, referenceModelDir } from './helpers/app.js';
import { relativeError } from './helpers/tiny-model.js';

const modelDir = await referenceModelDir();
const scratch = await mkdtemp(path.join(os.tmpdir(), 'mmn-model-'));
t.teardown(() => rm(scratch, { recursive: true, force: true }));

async function copyModel(name: string): Promise<string> {
  const dir = path.join(scratch, name);
  await cp(modelDir, dir, { recursive: true });
  return dir;
}

async function rehash(dir: string, file: string): Promise<void> {
  const { createHash } = await import('node:crypto');
  const manifestPath = path.join(dir, 'clip.json');
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
  manifest.files[file] = createHash('sha256')
    .update(await readFile(path.join(dir, file)))
    .digest('hex');
  await writeFile(manifestPath, JSON.stringify(manifest));
}

const options = {
  executionProviders: ['cpu' as const],
  intraOpThreads: 1,
  interOpThreads: 1,
  maxBatch: 64,
  maxBatchWaitMs: 5,
};

t.test('a wrong model directory stops with one message naming the file and the problem', async (t) => {
  await t.rejects(loadModelDirectory(path.join(scratch, 'absent')), {
    name: 'ModelDirectoryError',
    message: /absent\/clip\.json: not found/,
  });

  const badJson = await copyModel('bad-json');
  await writeFile(path.join(badJson, 'clip.json'), '{"format_version": 1,');
  await t.rejects(loadModelDirectory(badJson), /clip\.json: is not valid JSON/);

  const badField = await copyModel('bad-field');
  const manifest = JSON.parse(await readFile(path.join(badField, 'clip.json'), 'utf8'));
  manifest.neuron_count = 'many';
  await writeFile(path.join(badField, 'clip.json'), JSON.stringify(manifest));
  await t.rejects(loadModelDirectory(badField), /clip\.json: field \/neuron_count/);

  const corrupt = await copyModel('corrupt');
  await writeFile(path.join(corrupt, 'bilinear.f32'), Buffer.alloc(16));
  await t.rejects(loadModelDirectory(corrupt), /bilinear\.f32: sha256 [0-9a-f]+ does not match clip\.json/);

  const missing = await copyModel('missing');
  await rm(path.join(missing, 'text.onnx'));
  await t.rejects(loadModelDirectory(missing), /text\.onnx: missing/);

  const swapped = await copyModel('swapped');
  await cp(path.join(modelDir, 'visual_head.onnx'), path.join(swapped, 'text.onnx'));
  await rehash(swapped, 'text.onnx');
  const error = await ClipModel.load(swapped, options).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  t.ok(error instanceof ModelDirectoryError, 'a ModelDirectoryError');
  t.match((error as Error).message, /text\.onnx: inputs are \[neurons\]; expected \[input_ids\]/);
});

t.test('npm start with a wrong MODEL_DIR exits with one line', async (t) => {
  const result = spawnSync('npx', ['tsx', 'src/bin/server.ts'], {
    env: { ...process.env, MODEL_DIR: path.join(scratch, 'nowhere'), PORT: '0', HOST: '127.0.0.1' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(result.status, 1);
  const lines = result.stderr
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('npm warn'));
  t.equal(lines.length, 1, lines.join('\n'));
  t.match(lines[0], /^error: .*nowhere\/clip\.json: not found/);
});

t.test('micro-batched rows padded to the longest row give the same embeddings', async (t) => {
  const model = await ClipModel.load(modelDir, { ...options, maxBatchWaitMs: 20 });
  t.teardown(() => model.release());
  const batches: number[] = [];
  model.runObserver = (graph, rows) => graph === 'text' && batches.push(rows);
  const texts = ['a', 'a photo of a dog', 'i am feeling very very jealous today, my friend', 'yellow'];
  const together = await Promise.all(texts.map((text) => model.embedTexts([text])));
  t.same(batches, [4], 'four concurrent requests, one run');
  const model1 = await ClipModel.load(modelDir, { ...options, maxBatch: 1 });
  t.teardown(() => model1.release());
  for (const [i, text] of texts.entries()) {
    const [alone] = await model1.embedTexts([text]);
    t.ok(relativeError(together[i][0], alone) < 1e-5, `${text}: batched equals alone`);
  }
});

t.test('onnxruntime failing on one batch fails that batch with 503; the next batch works', async (t) => {
  const warnings: string[] = [];
  const model = await ClipModel.load(modelDir, {
    ...options,
    maxBatchWaitMs: 20,
    warn: (m) => warnings.push(m),
  });
  t.teardown(() => model.release());
  const good = model.tokenizer.encode('a photo of a dog').ids;
  // A token id past the end of the embedding table: onnxruntime's Gather rejects the whole run.
  const bad = [good[0], model.tokenizer.vocabSize + 1000, good.at(-1)!];
  const [sameBatch, broken] = await Promise.allSettled([
    model.embedTokenRows([good]),
    model.embedTokenRows([bad]),
  ]);
  for (const [what, outcome] of [
    ['the bad row', broken],
    ['a good row in the same batch', sameBatch],
  ] as const) {
    t.equal(outcome.status, 'rejected', `${what} fails with its batch`);
    if (outcome.status !== 'rejected') continue;
    const error = outcome.reason as { statusCode?: number; message: string };
    t.equal(error.statusCode, 503);
    t.equal(error.message, 'the model failed on this batch of requests; retry', 'no onnxruntime internals');
  }
  t.equal(warnings.length, 1, 'one warning per failed run');
  t.match(
    warnings[0],
    /onnxruntime failed on a text batch of 2 rows: .*(Gather|indices|out of)/i,
    'the details go to the log',
  );
  const [after] = await model.embedTokenRows([good]);
  t.equal(after.length, model.embedDim, 'the next batch succeeds');
  t.ok(after.every(Number.isFinite));
});

t.test('a token row that does not begin with the start token is refused before the graph', async (t) => {
  const model = await ClipModel.load(modelDir, { ...options, maxBatchWaitMs: 20 });
  t.teardown(() => model.release());
  const runs: number[] = [];
  model.runObserver = (graph, rows) => runs.push(rows);
  const good = model.tokenizer.encode('a photo of a dog').ids;
  const headless = good.slice(1);
  const refused = /token row 1 does not begin with the start token \(\d+\)/;
  await t.rejects(model.embedTokenRows([good, headless]), refused);
  await t.rejects(model.textAttributions([good, headless]), refused);
  t.same(runs, [], 'no graph ran');
  const [embedding] = await model.embedTokenRows([good]);
  t.equal(embedding.length, model.embedDim, 'a row with its start token is embedded');
});

t.test('CUDA falls back to CPU with one warning', async (t) => {
  const warnings: string[] = [];
  const model = await ClipModel.load(modelDir, {
    ...options,
    executionProviders: ['cuda', 'cpu'],
    warn: (message) => warnings.push(message),
  });
  t.teardown(() => model.release());
  t.equal(model.executionProvider, 'cpu');
  t.equal(warnings.length, 1);
  t.match(warnings[0], /cuda is unavailable.*falling back to cpu/);
});

t.test('/health: Redis backend, and degraded when Redis is unreachable', async (t) => {
  const withRedis = await buildTestApp({ redisUrl: 'redis://127.0.0.1:6379' });
  t.teardown(() => withRedis.close());
  for (let i = 0; i < 50 && !withRedis.cache.status().ok; i++) await new Promise((r) => setTimeout(r, 100));
  const healthy = (await withRedis.inject('/health')).json();
  t.same(healthy.cache, { backend: 'redis', ok: true });
  t.equal(healthy.status, 'ok');

  const noRedis = await buildTestApp({ redisUrl: 'redis://127.0.0.1:1' });
  t.teardown(() => noRedis.close());
  const degraded = (await noRedis.inject('/health')).json();
  t.same(degraded.cache, { backend: 'redis', ok: false });
  t.equal(degraded.status, 'degraded');
  const res = await noRedis.inject({
    method: 'POST',
    url: '/v1/embed/text',
    payload: { texts: ['still works'] },
  });
  t.equal(res.statusCode, 200, 'requests succeed without the cache');
});
