/**
 * The whole-model labelling job and the served catalogue on the embedded toy model, in process (the
 * in-memory job backend), with API keys configured:
 *
 * - POST /v1/neurons/labels labels every neuron from a collection of the probe archive's pictures
 *   in shards; the server closes mid-job and a second app on the same DATA_DIR resumes it under the
 *   same id without recomputing the shards written; progress comes as Server-Sent Events; every
 *   entry is checked against the evidence route (labels, texts, measure) and the multimodal share
 *   against GET /v1/neurons's; a neuron's cached maximal text (a real search) is in its evidence;
 *   a cancel removes the job's folder and keeps the previous automatic catalogue;
 * - precedence published > user > automatic, over HTTP and on a catalogue where some neurons have
 *   no published label; two catalogues on one folder share user labels (replicas on one volume);
 * - PUT/DELETE /v1/neurons/{id}/label: owner and admin rules, bad inputs (unknown neuron, empty,
 *   too long, unauthenticated);
 * - npm run label-agreement on the job's catalogue: its exact top-1 agreement with neurons.json
 *   equals scoreLabels on the service's in-memory labels.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { App } from '../src/app.js';
import { NeuronCatalogue } from '../src/attribution/neuron-catalogue.js';
import { DEFAULT_MODEL_DIR } from '../src/config.js';
import { LabelCatalogue, type AutomaticCatalogue } from '../src/evidence/catalogue.js';
import { scoreLabels, type Truth } from '../src/evidence/scoring.js';
import { labelAgreement } from '../src/bin/label-agreement.js';
import { buildTestApp } from './helpers/app.js';

const USER_A = 'labels-test-user-a';
const USER_B = 'labels-test-user-b';
const ADMIN = 'labels-test-admin';
const as = (key: string) => ({ authorization: `Bearer ${key}` });
/** Pictures per category taken from the probe archive (colour patches, shapes, faces). */
const PER = 3;

const tmp = await mkdtemp(path.join(os.tmpdir(), 'neuron-labels-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));
const dataDir = path.join(tmp, 'data');
const started = Date.now();
process.env.NEURON_LABEL_SHARD = '16'; // 32 shards of the 512 neurons
const SHARDS = 32;
t.teardown(() => void delete process.env.NEURON_LABEL_SHARD);

async function startApp(): Promise<App> {
  return buildTestApp({
    modelDir: DEFAULT_MODEL_DIR,
    dataDir,
    maxEventLoopDelayMs: 0,
    collectionProbe: false,
    apiKeys: [USER_A, USER_B],
    adminApiKeys: [ADMIN],
  });
}

// A small collection named "probe" (the default of the routes) from the probe archive's pictures.
const archive = path.join(tmp, 'archive');
await mkdir(archive);
execFileSync('tar', ['xzf', path.join(DEFAULT_MODEL_DIR, 'probe.tar.gz'), '-C', archive]);
const uploads: { name: string; bytes: Buffer; category: string; caption: null }[] = [];
for (const set of ['colour-patch', 'shape', 'face']) {
  for (const category of (await readdir(path.join(archive, set))).sort()) {
    const files = (await readdir(path.join(archive, set, category))).sort().slice(0, PER);
    for (const file of files) {
      uploads.push({
        name: `${set}/${category}/${file}`,
        bytes: await readFile(path.join(archive, set, category, file)),
        category,
        caption: null,
      });
    }
  }
}

let app = await startApp();
await app.words.settled();
await app.collections.create('probe', 'test');
await app.collections.addImages('probe', uploads);
await app.collections.settled('probe');
t.comment(`setup: app, word index and ${uploads.length} images in ${Date.now() - started} ms`);

const published = JSON.parse(await readFile(path.join(DEFAULT_MODEL_DIR, 'neurons.json'), 'utf8')) as Record<
  string,
  Truth & { score: number; source: string }
>;

async function call(method: string, url: string, key: string | undefined, payload?: unknown) {
  const response = await app.inject({
    method: method as 'GET',
    url,
    headers: key ? as(key) : {},
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });
  return { status: response.statusCode, body: response.body ? response.json() : null, text: response.body };
}

t.test('the labelling job: 202, bad inputs, a restart mid-job resumes it, SSE to the end', async (t) => {
  for (const [body, status, message] of [
    [{ collection: 'NOPE!' }, 400, /collection must be a collection id/],
    [{ collection: 'absent' }, 404, /absent/],
    [{ collections: 'probe' }, 400, /collections/],
    [{ collection: 'x'.repeat(65) }, 400, /collection must be a collection id/],
  ] as const) {
    const answer = await call('POST', '/v1/neurons/labels', USER_A, body);
    t.equal(answer.status, status, JSON.stringify(body));
    t.match(answer.body.message, message);
  }
  t.equal((await call('POST', '/v1/neurons/labels', undefined, {})).status, 401, 'unauthenticated');

  const submitted = await call('POST', '/v1/neurons/labels', USER_A, {});
  t.equal(submitted.status, 202, submitted.text);
  t.equal(submitted.body.collection, 'probe');
  const jobId = submitted.body.jobId as string;
  t.match(jobId, /^labels-/);
  const again = await call('POST', '/v1/neurons/labels', USER_B, { collection: 'probe' });
  t.equal(again.body.jobId, jobId, 'a second submission joins the running labelling');
  t.equal(again.body.deduplicated, true);

  // Close the server as soon as a shard is written: the job hands back, its plan and shards stay.
  const jobDir = path.join(app.neuronLabels.catalogue.dir, 'jobs', jobId);
  const submittedAt = Date.now();
  while (!(await readdir(jobDir).catch(() => [] as string[])).includes('shard-0.json')) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const firstShardMs = Date.now() - submittedAt;
  await app.close();
  const left = await readdir(jobDir);
  const writtenBefore = left.filter((name) => /^shard-\d+\.json$/.test(name)).length;
  t.ok(
    writtenBefore >= 1 && writtenBefore < SHARDS,
    `${writtenBefore} of ${SHARDS} shards written before the restart`,
  );
  t.notOk(
    left.some((name) => name.endsWith('.claim')),
    'claims released on close',
  );

  const restarted = Date.now();
  app = await startApp();
  // The unfinished plan is resubmitted when the app is ready; followed over SSE to its end.
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const events = await fetch(`${base}/v1/jobs/${jobId}/events`, { headers: as(USER_A) });
  t.equal(events.status, 200);
  const text = await events.text(); // the stream closes with the job's final event
  t.match(text, /event: completed/);
  const progress = [...text.matchAll(/event: progress\ndata: (.*)\n/g)].map((m) => JSON.parse(m[1]));
  t.ok(progress.length >= 1, `${progress.length} progress events`);
  t.ok(progress.every((p) => p.kind === 'neuron-labels'));
  t.equal(progress.at(-1).total, 512);
  t.ok(progress.at(-1).shards.written >= 1);
  const done = await call('GET', `/v1/jobs/${jobId}`, ADMIN);
  t.equal(done.body.state, 'completed');
  t.same(done.body.progress.shards, { total: SHARDS, written: SHARDS, running: 0 }, 'the progress, whole');
  const result = done.body.result;
  t.equal(result.neurons, 512);
  t.equal(result.labelled, 512);
  t.equal(result.images, uploads.length);
  t.ok(result.resumedShards >= writtenBefore, `resumed with ${result.resumedShards} shards written`);
  t.equal(result.maxTexts, 0, 'no maximal text cached yet (the in-memory cache went with the first app)');
  t.notOk(existsSync(jobDir), 'the job folder is gone');
  t.comment(
    `first shard written ${firstShardMs} ms after the submission; resumed run ${Date.now() - restarted} ms`,
  );
});

t.test('every entry agrees with the evidence route and the list', async (t) => {
  const automatic = JSON.parse(
    await readFile(app.neuronLabels.catalogue.automaticFile, 'utf8'),
  ) as AutomaticCatalogue;
  t.equal(automatic.neurons.length, 512);
  t.same(
    automatic.neurons.map((entry) => entry.id),
    Array.from({ length: 512 }, (_, i) => i),
  );
  for (const neuron of [0, 99, 100, 224, 511]) {
    const entry = automatic.neurons[neuron];
    const { body } = await call('GET', `/v1/neurons/${neuron}/evidence?k=5`, USER_A);
    t.same(
      entry.labels.map((label) => [label.concept, label.score]),
      body.labels.map((label: { concept: string; score: number }) => [label.concept, label.score]),
      `neuron ${neuron}: labels`,
    );
    t.equal(entry.label, body.labels[0].concept);
    t.same(entry.topTexts, body.speaking.texts, `neuron ${neuron}: top texts`);
    t.same(
      entry.topWords.map((w) => w.word),
      body.reading.words.map((w: { word: string }) => w.word),
    );
    t.same(
      entry.topImages.map((image) => image.imageId),
      body.seeing.topImages.map((image: { imageId: number }) => image.imageId),
    );
    t.equal(entry.multimodality?.topCategory, body.multimodality.topCategory);
    t.equal(entry.multimodality?.multimodal, body.multimodality.multimodal);
  }
  const list = await call('GET', '/v1/neurons?limit=1', USER_A);
  t.equal(automatic.multimodalShare, list.body.multimodalShare, 'the multimodal share of GET /v1/neurons');
  t.ok(automatic.neurons.every((entry) => entry.maxText === null));
  t.ok(automatic.neurons[223].labels.every((label) => label.evidence.inMaxText === null));
  // A real maximal-text search of neuron 224 (a few steps), cached as its best search: it is in
  // the label evidence of the evidence route and of the job's entries from then on.
  const search = await call('POST', '/v1/search/max-text', USER_A, { neuron: 224, steps: 3 });
  const searchId = search.body.jobId as string;
  for (;;) {
    const { body } = await call('GET', `/v1/jobs/${searchId}`, USER_A);
    if (body.state === 'completed') break;
    if (body.state === 'failed') throw new Error(body.error);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const best = await app.jobs.bestForNeuron(224);
  t.ok(best, 'the search was cached');
  const evidence = await call('GET', '/v1/neurons/224/evidence?k=3', USER_A);
  t.equal(evidence.body.maxText.text, best!.result.text);
  const manifest = await app.collections.get('probe');
  const entry = await app.neuronLabels.jobs.entryOf(
    await app.evidence.view(manifest),
    (await app.words.require()).index,
    224,
  );
  t.same(entry.maxText, { text: best!.result.text, score: best!.result.score, steps: best!.result.steps });
  const words = new Set(best!.result.text.toLowerCase().split(/[^a-z0-9']+/));
  for (const label of [...entry.labels, ...evidence.body.labels])
    t.equal(
      label.evidence.inMaxText,
      words.has(label.concept),
      `"${label.concept}" in "${best!.result.text}"`,
    );
  t.same(
    entry.labels.map((label) => label.concept),
    automatic.neurons[224].labels.map((label) => label.concept),
  );
  const status = await call('GET', '/v1/neurons/labels', USER_A);
  t.same(status.body.counts, { published: 512, user: 0, automatic: 512 });
  t.equal(status.body.automatic.collection, 'probe');
});

t.test('a cancel removes the job folder and keeps the previous catalogue', async (t) => {
  const before = JSON.parse(await readFile(app.neuronLabels.catalogue.automaticFile, 'utf8')).jobId;
  const submitted = await call('POST', '/v1/neurons/labels', USER_B, {});
  const jobId = submitted.body.jobId as string;
  t.not(jobId, before);
  const stranger = await call('DELETE', `/v1/jobs/${jobId}`, USER_A);
  t.equal(stranger.status, 403, 'only its submitters');
  t.match(stranger.body.message, /its submitters/);
  const cancelled = await call('DELETE', `/v1/jobs/${jobId}`, USER_B);
  t.equal(cancelled.status, 200);
  t.equal(cancelled.body.state, 'cancelled');
  // The folder goes when the shard that was running has stopped: soon, but later on a loaded machine.
  const folder = path.join(app.neuronLabels.catalogue.dir, 'jobs', jobId);
  const deadline = Date.now() + 20_000;
  while (existsSync(folder) && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 100));
  t.notOk(existsSync(folder), 'the job folder is removed');
  t.equal(JSON.parse(await readFile(app.neuronLabels.catalogue.automaticFile, 'utf8')).jobId, before);
});

t.test('user labels: precedence over HTTP, owners, bad inputs', async (t) => {
  // Neuron 224: published "blue", an automatic label, and now a user label: published is served.
  const put = await call('PUT', '/v1/neurons/224/label', USER_A, { label: '  deep   sky ' });
  t.equal(put.status, 200, put.text);
  t.equal(put.body.label, published['224'].label);
  t.equal(put.body.labelSource, 'published');
  t.same(
    put.body.labels.map((l: { source: string }) => l.source),
    ['published', 'user', 'automatic'],
  );
  t.equal(put.body.labels[1].label, 'deep sky', 'trimmed, inner spaces collapsed');
  t.equal(put.body.family, published['224'].family);
  t.equal(put.body.automatic.id, 224);
  const list = await call('GET', '/v1/neurons?q=deep%20sky', USER_A);
  t.equal(list.body.total, 0, 'the list searches the served label, which stays the published one');

  for (const [key, body, status, message] of [
    [USER_B, { label: 'mine' }, 403, /another client/],
    [USER_A, { label: '' }, 400, /label must/],
    [USER_A, { label: '   ' }, 400, /must not be empty/],
    [USER_A, { label: 'x'.repeat(101) }, 400, /at most 100/],
    [USER_A, { label: 7 }, 400, /label must be a string/],
    [USER_A, { label: 'a', extra: 1 }, 400, /extra/],
    [undefined, { label: 'a' }, 401, /./],
  ] as const) {
    const answer = await call('PUT', '/v1/neurons/224/label', key, body);
    t.equal(answer.status, status, JSON.stringify(body));
    t.match(answer.body.message, message);
  }
  for (const [url, status, message] of [
    ['/v1/neurons/512/label', 400, /out of range \(0 to 511\)/],
    ['/v1/neurons/x/label', 400, /neuron id/],
  ] as const) {
    const answer = await call('PUT', url, USER_A, { label: 'a' });
    t.equal(answer.status, status, url);
    t.match(answer.body.message, message);
  }
  t.equal((await call('DELETE', '/v1/neurons/224/label', USER_B)).status, 403);
  t.equal((await call('DELETE', '/v1/neurons/224/label', undefined)).status, 401);
  const byAdmin = await call('PUT', '/v1/neurons/224/label', ADMIN, { label: 'azure' });
  t.equal(byAdmin.status, 200, 'an admin key replaces it');
  t.equal(byAdmin.body.labels[1].label, 'azure');
  const removed = await call('DELETE', '/v1/neurons/224/label', ADMIN);
  t.equal(removed.status, 200);
  t.same(
    removed.body.labels.map((l: { source: string }) => l.source),
    ['published', 'automatic'],
  );
  const absent = await call('DELETE', '/v1/neurons/224/label', USER_A);
  t.equal(absent.status, 404);
  t.match(absent.body.message, /no user label/);
  t.equal((await call('GET', '/v1/neurons/512', USER_A)).status, 400);
});

t.test('precedence where some neurons have no published label; replicas share user labels', async (t) => {
  const dir = path.join(tmp, 'precedence');
  await mkdir(dir);
  const file = path.join(dir, 'neurons.json');
  await writeFile(file, JSON.stringify({ 0: { label: 'red', family: 'colour', source: 'paper' } }));
  const model = { sha256: 'f'.repeat(64), neuronCount: 4 };
  const publishedCatalogue = await NeuronCatalogue.load(file, 4);
  const one = new LabelCatalogue(dir, model, publishedCatalogue);
  const two = new LabelCatalogue(dir, model, publishedCatalogue);
  const entry = (id: number, label: string | null) => ({
    id,
    label,
    score: label ? 0.5 : null,
    labels: [],
    topImages: [],
    topWords: [],
    topTexts: [],
    multimodality: null,
    maxText: null,
  });
  await one.writeAutomatic({
    format: 'neuron-labels/1',
    model: model.sha256,
    collection: 'c',
    images: 1,
    jobId: 'labels-x',
    finishedAt: new Date(0).toISOString(),
    multimodalShare: null,
    maxTexts: 0,
    neurons: [entry(0, 'crimson'), entry(1, 'sun'), entry(2, 'dog'), entry(3, null)],
  });
  await one.setUserLabel(0, 'scarlet', { owner: 'key:a', admin: false });
  await one.setUserLabel(1, 'star', { owner: 'key:a', admin: false });
  const served = await Promise.all([0, 1, 2, 3].map((id) => two.entry(id)));
  t.same(
    served.map((e) => [e.label, e.labelSource]),
    [
      ['red', 'published'],
      ['star', 'user'],
      ['dog', 'automatic'],
      [null, null],
    ],
    'published > user > automatic, read by a second catalogue on the same folder',
  );
  t.same(
    served[0].labels.map((l) => [l.label, l.source, l.from]),
    [
      ['red', 'published', 'paper'],
      ['scarlet', 'user', 'key:a'],
      ['crimson', 'automatic', 'c'],
    ],
    'every label kept with its source',
  );
  t.notOk(two.has(3) && served[3].labels.length > 0);
  await two.deleteUserLabel(1, { owner: 'key:b', admin: true });
  t.equal((await one.entry(1)).labelSource, 'automatic', 'the first sees the second’s delete');
  // Another model's automatic catalogue in the folder is not served.
  const other = new LabelCatalogue(dir, { sha256: 'e'.repeat(64), neuronCount: 4 }, publishedCatalogue);
  t.equal((await other.entry(2)).label, null);
});

t.test('npm run label-agreement on the job’s catalogue', async (t) => {
  const report = await labelAgreement({ modelDir: DEFAULT_MODEL_DIR, dataDir, collection: 'probe' });
  t.equal(report.reference.source, 'published labels (neurons.json label)');
  t.equal(report.neurons, 512);
  t.equal(
    report.automatic.multimodalShare,
    (await call('GET', '/v1/neurons/labels', USER_A)).body.automatic.multimodalShare,
  );
  // Exact top-1 agreement equals scoreLabels on the service's in-memory labels (another path).
  const labels = await app.evidence.allLabels('probe');
  const truth = Array.from({ length: 512 }, (_, c) => published[String(c)] ?? null);
  const scores = scoreLabels(
    labels.map((l) => l.dissect.map((label) => label.concept)),
    truth,
    {},
  );
  for (const [family, score] of Object.entries(scores)) {
    const row = report.rows.find((r) => r.family === family)!;
    t.equal(row.neurons, score.neurons, family);
    t.equal(row.exactTop1, score.top1, `${family}: exact top-1`);
    t.equal(row.exactTop3, score.top3, `${family}: exact top-3`);
    t.ok(row.wordTop1 >= row.exactTop1);
  }
  const all = report.rows.find((r) => r.family === 'all')!;
  t.ok(
    all.wordTop1 > all.chanceTop1,
    `top-1 ${all.wordTop1} above the shuffled baseline ${all.chanceTop1.toFixed(1)}`,
  );
  // No catalogue under that DATA_DIR: exit code 2 with a message naming the job.
  await t.rejects(
    labelAgreement({ modelDir: DEFAULT_MODEL_DIR, dataDir: path.join(tmp, 'empty'), collection: 'probe' }),
    /POST \/v1\/neurons\/labels/,
  );
});

t.teardown(() => app.close());
