/**
 * Neuron evidence over HTTP on the embedded toy model (GET /v1/neurons/{id}/evidence, GET
 * /v1/neurons): the three sides are recomputed here from other paths (category means from the
 * collection's stored rows, attributions through POST /v1/attribution/text, words from the word
 * index), the measure's ranks from those; the list's filters, sort and paging; the default
 * collection; the 4xx answers.
 *
 * The automatic labels are scored against the catalogue (neurons.json, made from seed 7's renders)
 * with labels from a small collection of another seed's pictures: its picture families must name
 * their concept far above chance. The full scoring (every word render, a second truth seed) is
 * scripts/toyworld-neuron-labels.ts, whose figures are in docs/neuron-evidence.md.
 */
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { App } from '../src/app.js';
import { DEFAULT_MODEL_DIR } from '../src/config.js';
import { CollectionReader } from '../src/collections/reader.js';
import { FILES } from '../src/collections/store.js';
import { scoreLabels, type Truth } from '../src/evidence/scoring.js';
import { collect, heldout, worldConcepts } from '../scripts/toyworld-neuron-labels.js';
import { buildTestApp } from './helpers/app.js';

/** A seed outside training (Random(seed·1000 + worker)) and the catalogue's calibration seed 7. */
const LABEL_SEED = 11;
const PER = 6;
/** The picture sets and the concept names written in dark ink; not every vocabulary word (the script does). */
const SETS = new Set(['colour_patch', 'shape', 'face', 'word']);

const tmp = await mkdtemp(path.join(os.tmpdir(), 'neuron-evidence-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));
const started = Date.now();
const rendersDir = path.join(tmp, 'renders');
const [renders, wordConcept] = await Promise.all([heldout(LABEL_SEED, rendersDir, PER), worldConcepts()]);
const rendered = Date.now();
// No back-pressure 503s on a loaded machine; no probe collection installed at start (the test makes
// its own collections, and one named "probe" to check the default).
const app: App = await buildTestApp({
  modelDir: DEFAULT_MODEL_DIR,
  dataDir: path.join(tmp, 'data'),
  maxEventLoopDelayMs: 0,
  collectionProbe: false,
});
t.teardown(() => app.close());
await app.words.settled(); // the word index of words.txt is built at start
const indexed = Date.now();
const labelItems = await collect(app, 'seed-a', rendersDir, renders, (item) =>
  SETS.has(item.set) ? item.label : null,
);
t.comment(
  `setup: renders ${rendered - started} ms, app and word index ${indexed - rendered} ms, collection of ${labelItems.length} images ${Date.now() - indexed} ms`,
);

const catalogue = JSON.parse(await readFile(path.join(DEFAULT_MODEL_DIR, 'neurons.json'), 'utf8')) as Record<
  string,
  Truth
>;

async function get(url: string) {
  const response = await app.inject({ method: 'GET', url });
  return { status: response.statusCode, body: response.json() };
}

/** Mean activation per category recomputed from the stored rows (not the service's view). */
async function categoryMeans(id: string): Promise<{ names: string[]; means: number[][] }> {
  const manifest = await app.collections.get(id);
  const reader = new CollectionReader(app.collections.store, manifest);
  const codes = await reader.categoryCodes();
  const C = manifest.model.neurons;
  const sums = manifest.categories.map(() => new Array<number>(C).fill(0));
  const counts = manifest.categories.map(() => 0);
  for (let i = 0; i < manifest.images; i++) {
    const row = await reader.row(FILES.means, i);
    counts[codes[i]]++;
    for (let c = 0; c < C; c++) sums[codes[i]][c] += row[c];
  }
  return { names: manifest.categories, means: sums.map((sum, k) => sum.map((v) => v / counts[k])) };
}

const seen = await categoryMeans('seed-a');

t.test('the three sides of a neuron, recomputed from other paths', async (t) => {
  // The catalogue's strongest blue neuron (model card: neuron 224, z = 49 on blue pictures).
  const neuron = 224;
  const { status, body } = await get(`/v1/neurons/${neuron}/evidence?collection=seed-a&k=5`);
  t.equal(status, 200);
  t.equal(body.collection, 'seed-a');
  t.equal(body.images, labelItems.length);
  t.equal(body.catalogue.label, catalogue[String(neuron)].label);
  // Seeing: the categories by mean activation, as recomputed from the rows.
  const order = seen.names
    .map((name, k) => ({ name, mean: seen.means[k][neuron] }))
    .sort((a, b) => b.mean - a.mean);
  t.same(
    body.seeing.categories.map((c: { category: string }) => c.category),
    order.slice(0, 5).map((c) => c.name),
  );
  body.seeing.categories.forEach((c: { mean: number }, i: number) =>
    t.ok(
      Math.abs(c.mean - order[i].mean) < 1e-5 * Math.max(1, Math.abs(order[i].mean)),
      `mean of ${order[i].name}`,
    ),
  );
  t.equal(body.seeing.topImages.length, 5);
  t.match(body.seeing.topImages[0].thumbnailUrl, /^\/v1\/collections\/seed-a\/images\/\d+\/thumbnail$/);
  // Reading: the word index's top words.
  const words = await app.words.neuronWords(neuron, 5);
  t.same(
    body.reading.words.map((w: { word: string }) => w.word),
    words.top.map((w) => w.word),
  );
  // Speaking: every text's attribution through POST /v1/attribution/text (template mean, full vector).
  const texts = app.words.vocabulary.words;
  const templates = body.speaking.templates as string[];
  t.equal(body.speaking.vocabulary, texts.length, 'the categories are all words of words.txt');
  const column: number[] = [];
  for (let start = 0; start < texts.length; start += 128) {
    const response = await app.inject({
      method: 'POST',
      url: '/v1/attribution/text',
      payload: { texts: texts.slice(start, start + 128), templates, full: true },
    });
    t.equal(response.statusCode, 200);
    for (const result of response.json().results as { vector: number[] }[])
      column.push(result.vector[neuron]);
  }
  const byAttribution = texts.map((text, i) => ({ text, a: column[i] })).sort((a, b) => b.a - a.a);
  t.same(
    body.speaking.texts.map((x: { text: string }) => x.text),
    byAttribution.slice(0, 5).map((x) => x.text),
  );
  // The measure's ranks, from the sides recomputed here.
  const m = body.multimodality;
  t.equal(m.topCategory, order[0].name);
  const top = texts.indexOf(m.topCategory);
  t.equal(m.speakingRank, 1 + column.filter((v) => v > column[top]).length, 'speaking rank');
  const allWords = await app.words.neuronWords(neuron, texts.length);
  t.equal(m.readingRank, 1 + allWords.top.findIndex((w) => w.word === m.topCategory), 'reading rank');
  t.equal(m.multimodal, m.speakingRank <= 5 && m.readingRank <= 5);
  t.equal(body.labels.length, 3);
  t.ok(body.labels[0].score >= body.labels[1].score);
  t.comment(
    `neuron ${neuron}: sees ${m.topCategory}, speaking rank ${m.speakingRank}, reading rank ${m.readingRank}, labels ${body.labels.map((l: { concept: string }) => l.concept).join(', ')}`,
  );
});

t.test('automatic labels name the planted concepts of the picture families', async (t) => {
  const labels = await app.evidence.allLabels('seed-a');
  t.equal(labels.length, 512);
  const ranked = labels.map((neuron) => neuron.dissect.map((label) => label.concept));
  const truth = Array.from({ length: 512 }, (_, c) => catalogue[String(c)] ?? null);
  const scores = scoreLabels(ranked, truth, wordConcept);
  // Chance is about 3/247 for the top 3; soft-WPMI over these pictures names the concept of most
  // colour, shape and expression neurons (measured here: 70 to 95% depending on the family).
  for (const family of ['colour', 'shape', 'expression']) {
    const s = scores[family];
    t.ok(
      s.conceptTop3 / s.neurons > 0.5,
      `${family}: the top 3 name the concept for ${s.conceptTop3}/${s.neurons}`,
    );
  }
  // Each label carries its evidence: the neuron's top images in the label's category.
  const blue = labels[224].dissect[0];
  t.ok(blue.evidence.topImages > 0);
  t.comment(
    Object.entries(scores)
      .map(
        ([family, s]) =>
          `${family}: concept top-1 ${s.conceptTop1}/${s.neurons}, top-3 ${s.conceptTop3}/${s.neurons}`,
      )
      .join('; '),
  );
});

t.test('scoreLabels counts exact and concept hits', async (t) => {
  const concepts = { red: 'red', cherry: 'red', blue: 'blue', star: 'star', lemon: 'yellow' };
  const scores = scoreLabels(
    [['cherry', 'red'], ['blue star'], ['lemon'], ['x']],
    [
      { family: 'colour', label: 'red' },
      { family: 'shape', label: 'star' },
      { family: 'word', label: 'lemon' },
      null,
    ],
    concepts,
  );
  t.same(scores.colour, { neurons: 1, top1: 0, top3: 1, conceptTop1: 1, conceptTop3: 1 });
  t.same(scores.shape, { neurons: 1, top1: 0, top3: 0, conceptTop1: 1, conceptTop3: 1 });
  t.same(scores.word, { neurons: 1, top1: 1, top3: 1, conceptTop1: 1, conceptTop3: 1 });
  t.same(scores.all, { neurons: 3, top1: 1, top3: 2, conceptTop1: 3, conceptTop3: 3 });
});

t.test('GET /v1/neurons: filters, sort and paging', async (t) => {
  const all = await get('/v1/neurons?collection=seed-a&limit=500');
  t.equal(all.status, 200);
  t.equal(all.body.total, 512);
  t.equal(all.body.neurons.length, 500);
  t.equal(all.body.neurons[0].id, 0);
  const first = all.body.neurons[0];
  t.equal(first.label, catalogue['0'].label);
  t.equal(first.family, catalogue['0'].family);
  t.type(first.autoLabel.concept, 'string');
  const sorted = await get('/v1/neurons?collection=seed-a&sort=multimodality&limit=500');
  const scores = sorted.body.neurons.map(
    (n: { multimodality: { score: number | null } }) => n.multimodality.score ?? -Infinity,
  );
  t.ok(
    scores.every((s: number, i: number) => i === 0 || scores[i - 1] >= s),
    'sorted by the score, highest first',
  );
  const page = await get('/v1/neurons?collection=seed-a&sort=multimodality&offset=10&limit=5');
  t.same(
    page.body.neurons.map((n: { id: number }) => n.id),
    sorted.body.neurons.slice(10, 15).map((n: { id: number }) => n.id),
    'offset and limit page the same order',
  );
  const colour = await get('/v1/neurons?family=colour&limit=500');
  const colourIds = Object.entries(catalogue)
    .filter(([, entry]) => entry.family === 'colour')
    .map(([id]) => Number(id));
  t.same(
    colour.body.neurons.map((n: { id: number }) => n.id),
    colourIds,
  );
  const lexical = await get('/v1/neurons?lexical=true&limit=500');
  const set = (await app.words.lexicalSet()).neurons;
  t.same(
    lexical.body.neurons.map((n: { id: number }) => n.id),
    set,
  );
  const notLexical = await get('/v1/neurons?lexical=false&limit=1');
  t.equal(notLexical.body.total, 512 - set.length);
  const search = await get('/v1/neurons?q=BLU&limit=500');
  t.ok(search.body.total > 0);
  t.ok(
    search.body.neurons.every(
      (n: { label: string | null; autoLabel: { concept: string } | null }) =>
        (n.label ?? '').includes('blu') || (n.autoLabel?.concept ?? '').includes('blu'),
    ),
  );
  const byLabel = await get('/v1/neurons?sort=label&limit=500');
  const labelsInOrder = byLabel.body.neurons.map((n: { label: string }) => n.label);
  t.same(
    labelsInOrder,
    [...labelsInOrder].sort((a: string, b: string) => a.localeCompare(b)),
  );
});

t.test('export in Neuronpedia’s shape, checked against the stored rows and the evidence', async (t) => {
  const neuron = 224;
  const { status, body } = await get(`/v1/neurons/${neuron}/export?collection=seed-a&examples=3`);
  t.equal(status, 200);
  t.equal(body.format, 'neuronpedia-feature-like/1');
  t.equal(body.index, String(neuron));
  t.equal(body.layer, 'visual.layer4');
  // The column from the stored rows.
  const manifest = await app.collections.get('seed-a');
  const reader = new CollectionReader(app.collections.store, manifest);
  const column: number[] = [];
  for (let i = 0; i < manifest.images; i++) column.push((await reader.row(FILES.means, i))[neuron]);
  t.ok(Math.abs(body.maxActApprox - Math.max(...column)) < 1e-6, 'maxActApprox is the column’s maximum');
  t.equal(body.frac_nonzero, column.filter((v) => v > 0).length / column.length, 'frac_nonzero');
  t.equal(body.freq_hist_data_bar_heights.length, 20);
  t.equal(body.freq_hist_data_bar_values.length, 20, 'bar values parallel to the heights');
  t.equal(
    body.freq_hist_data_bar_heights.reduce((a: number, b: number) => a + b, 0),
    column.length,
  );
  const sorted = column
    .map((value, imageId) => ({ value, imageId }))
    .sort((a, b) => b.value - a.value || a.imageId - b.imageId);
  t.same(
    body.activations.slice(0, 3).map((a: { imageId: number }) => a.imageId),
    sorted.slice(0, 3).map((a) => a.imageId),
    'the first examples are the top images',
  );
  t.equal(body.activations.length, 3 + 5 * 3, 'top 3 and 3 per quantile band');
  const evidence = (await get(`/v1/neurons/${neuron}/evidence?collection=seed-a&k=3`)).body;
  t.same(
    body.pos_str,
    evidence.speaking.texts.map((x: { text: string }) => x.text),
  );
  t.ok(body.neg_values.every((v: number) => v <= body.pos_values[2]));
  t.same(
    body.top_words.map((w: { word: string }) => w.word),
    evidence.reading.words.map((w: { word: string }) => w.word),
  );
  t.same(body.explanations[0], {
    description: catalogue[String(neuron)].label,
    score: (catalogue[String(neuron)] as Truth & { score: number }).score,
    typeName: 'catalogue',
    explanationModelName: 'toyworld held-out activations',
  });
  t.same(
    body.explanations.slice(1).map((e: { description: string }) => e.description),
    evidence.labels.map((l: { concept: string }) => l.concept),
  );
  t.same(body.multimodality, evidence.multimodality);
  const page = await get('/v1/neurons/export?collection=seed-a&examples=2&offset=510&limit=5');
  t.equal(page.status, 200);
  t.equal(page.body.total, 512);
  t.same(
    page.body.neurons.map((n: { index: string }) => n.index),
    ['510', '511'],
  );
  for (const [url, code, message] of [
    ['/v1/neurons/512/export', 400, /0 to 511/],
    ['/v1/neurons/3/export?examples=51', 400, /examples/],
    ['/v1/neurons/3/export?collection=nope', 404, /not found/],
    ['/v1/neurons/export?limit=0', 400, /limit/],
    ['/v1/neurons/export?collection=nope', 404, /not found/],
  ] as [string, number, RegExp][]) {
    const response = await get(url);
    t.equal(response.status, code, url);
    t.match(response.body.message, message);
  }
});

t.test('the default collection: none without "probe", then "probe"', async (t) => {
  const { status, body } = await get('/v1/neurons/224/evidence');
  t.equal(status, 200);
  t.equal(body.collection, null);
  t.equal(body.seeing, null);
  t.match(body.seeingUnavailable, /pass \?collection=/);
  t.equal(body.reading.words.length, 10);
  t.equal(body.speaking.texts.length, 10);
  t.equal(body.multimodality, null);
  t.same(body.labels, []);
  const sorted = await get('/v1/neurons?sort=multimodality');
  t.equal(sorted.status, 400);
  t.match(sorted.body.message, /needs a collection/);
  // A collection named "probe" becomes the default.
  const colours = labelItems.filter((item) => item.set === 'colour_patch');
  await app.collections.create('probe', 'test');
  await app.collections.addImages(
    'probe',
    await Promise.all(
      colours.map(async (item) => ({
        name: item.file,
        bytes: await readFile(path.join(rendersDir, item.file)),
        category: item.label,
        caption: null,
      })),
    ),
  );
  await app.collections.settled('probe');
  const probe = await get('/v1/neurons/224/evidence?k=3');
  t.equal(probe.status, 200);
  t.equal(probe.body.collection, 'probe');
  t.equal(probe.body.images, colours.length);
  t.equal(probe.body.seeing.categories.length, 3);
  const list = await get('/v1/neurons?sort=multimodality&limit=3');
  t.equal(list.status, 200);
  t.equal(list.body.collection, 'probe');
});

t.test('bad inputs are 4xx naming what is allowed', async (t) => {
  const cases: [string, number, RegExp][] = [
    ['/v1/neurons/512/evidence?collection=seed-a', 400, /0 to 511/],
    ['/v1/neurons/abc/evidence', 400, /neuron id must be an integer from 0 to 511/],
    ['/v1/neurons/1.5/evidence', 400, /neuron id/],
    ['/v1/neurons/3/evidence?collection=nope', 404, /collection "nope" not found/],
    ['/v1/neurons/3/evidence?collection=Bad_Id', 400, /collection must be a collection id/],
    ['/v1/neurons/3/evidence?collection=seed-a&k=0', 400, /k/],
    ['/v1/neurons/3/evidence?collection=seed-a&k=51', 400, /k/],
    ['/v1/neurons/3/evidence?extra=1', 400, /extra/],
    ['/v1/neurons?sort=bogus', 400, /sort must be .*"multimodality"/],
    [
      '/v1/neurons?family=bogus',
      400,
      /family must be one of "colour", "expression", "shape", "word", "none"/,
    ],
    ['/v1/neurons?lexical=maybe', 400, /lexical must be "true" or "false"/],
    ['/v1/neurons?limit=0', 400, /limit/],
    ['/v1/neurons?offset=-1', 400, /offset/],
    ['/v1/neurons?collection=nope', 404, /collection "nope" not found/],
  ];
  for (const [url, status, message] of cases) {
    const response = await get(url);
    t.equal(response.status, status, url);
    t.match(response.body.message, message, `${url}: ${response.body.message}`);
  }
  await app.collections.create('empty', 'test');
  const empty = await get('/v1/neurons/3/evidence?collection=empty');
  t.equal(empty.status, 409);
  t.match(empty.body.message, /no indexed images yet/);
});
