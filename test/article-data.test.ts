/**
 * The article's published data about RN50-x4 (Goh et al. 2021, distillpub/post--multimodal, CC BY 4.0):
 * the exporter's own copy (tools/export/article_data/rn50x4/) equals the files of
 * ../shared/reference/rn50x4/, and the catalogue an RN50x4 export writes (neurons.json, read by the
 * service) carries all of it: family "lexical" for the article's ids, the hand labels, the top-3
 * words of every neuron, each entry with its source and the article's credit.
 */
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { NeuronCatalogue } from '../src/attribution/neuron-catalogue.js';
import { catalogueLexical, combineLexical } from '../src/attribution/lexical-neurons.js';
import { referenceLabels } from '../src/bin/label-agreement.js';
import { repoRoot, runPython } from './helpers/tiny-model.js';

const ARTICLE = 'Goh et al. 2021, Multimodal Neurons in Artificial Neural Networks';
const CREDIT = `${ARTICLE}, CC BY 4.0`;
const SHARED = path.resolve(repoRoot, '../shared/reference/rn50x4');
const COPY = path.join(repoRoot, 'tools/export/article_data/rn50x4');
const FILES = ['neuron-hand-labels.json', 'lexical-neurons.json', 'neuron-top-words.json'];

/** argv: OUT file. neurons.json of an RN50x4 export, built and written as export_clip.py does. */
const WRITE_RN50X4_CATALOGUE = `
import sys
from tools.export.clip_model import RELEASED_CONFIGS
from tools.export.neurons import build_catalogue, write_catalogue
write_catalogue(sys.argv[1], build_catalogue(RELEASED_CONFIGS["RN50x4"]))
`;

const read = (dir: string, file: string) => readFile(path.join(dir, file), 'utf8');

t.test('the exporter’s copy of the article’s data equals the published files', async (t) => {
  for (const file of FILES) t.equal(await read(COPY, file), await read(SHARED, file), `${file}: verbatim`);
  const neuronsPy = await readFile(path.join(repoRoot, 'tools/export/neurons.py'), 'utf8');
  t.notMatch(neuronsPy, /shared/, 'the exporter reads nothing from ../shared');
});

t.test('an RN50x4 export’s neurons.json carries the article’s data, read by the service', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rn50x4-catalogue-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'neurons.json');
  const written = await runPython(['-c', WRITE_RN50X4_CATALOGUE, file]);
  t.equal(written.code, 0, written.stderr);
  const catalogue = await NeuronCatalogue.load(file, 2560); // the service's own checks
  t.equal(catalogue.size, 2560, 'every neuron has an entry (its top words at least)');

  const lexicalIds = JSON.parse(await read(SHARED, 'lexical-neurons.json')) as number[];
  const handLabels = JSON.parse(await read(SHARED, 'neuron-hand-labels.json')) as Record<string, string>;
  const topWords = JSON.parse(await read(SHARED, 'neuron-top-words.json')) as Record<string, string>;
  t.equal(lexicalIds.length, 71, '71 ids as published');
  const distinct = [...new Set(lexicalIds)].sort((a, b) => a - b);
  t.equal(distinct.length, 70, '70 distinct ids (758 is listed twice)');

  const lexical = catalogueLexical(catalogue);
  t.same(
    lexical.map((entry) => entry.id),
    distinct,
    'family "lexical" for exactly the article’s ids',
  );
  t.ok(
    lexical.every((entry) => entry.source?.includes('lexical-neurons.json')),
    'each lexical entry names its source file',
  );
  const missing = Object.entries(handLabels).filter(([id, label]) => {
    const entry = catalogue.get(Number(id));
    return entry?.label !== label.trim() && entry?.handLabel !== label.trim();
  });
  t.same(missing, [], `all ${Object.keys(handLabels).length} hand labels`);
  const wrongWords = Object.entries(topWords).filter(
    ([id, words]) => catalogue.get(Number(id))?.topWords?.join(', ') !== words,
  );
  t.same(wrongWords, [], 'the top-3 words of all 2,560 neurons');
  t.ok(
    catalogue.list().every((entry) => entry.credit === CREDIT && entry.source),
    'every entry has its source and the article’s credit',
  );
  t.same(catalogue.get(89), {
    id: 89,
    label: 'Donald Trump',
    family: 'person',
    topWords: ['donald', 'immigrants', 'resist'],
    source: `${ARTICLE} (article text); distillpub/post--multimodal: neuron-top-words.json`,
    credit: CREDIT,
  });
  t.equal(catalogue.get(1512)?.handLabel, 'Happy', 'a named neuron keeps its hand label beside');

  // npm run label-agreement on an RN50x4 directory scores against exactly the article's hand labels.
  const reference = referenceLabels(JSON.parse(await readFile(file, 'utf8')));
  t.match(reference.source, /^hand labels/);
  t.same(
    [...reference.labels.keys()].sort((a, b) => a - b),
    Object.keys(handLabels)
      .map(Number)
      .sort((a, b) => a - b),
    'label-agreement: the hand-labelled neurons',
  );
  t.ok(
    [...reference.labels].every(([id, { label }]) => label === handLabels[String(id)]!.trim()),
    'label-agreement: their hand labels',
  );

  // The service's lexical set on this catalogue: the article's 70, from the catalogue.
  const set = combineLexical(lexical, { available: false, reason: 'no word index' });
  t.same(set.neurons, distinct);
  t.same(set.use.sources, ['catalogue']);
  t.ok(set.entries.every((entry) => entry.sources.join() === 'catalogue'));
});

t.test('the catalogue’s checks: a known field of the wrong type is refused', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'catalogue-checks-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { writeFile } = await import('node:fs/promises');
  const cases: [unknown, RegExp][] = [
    [{ 3: { label: 'x', topWords: 'a, b' } }, /"topWords" must be an array of strings/],
    [{ 3: { family: 7 } }, /"family" must be a string/],
    [{ 3: { credit: ['x'] } }, /"credit" must be a string/],
    [{ 3: 12 }, /must be an object/],
    [{ 9: 'x' }, /not a neuron id/],
  ];
  for (const [i, [json, message]] of cases.entries()) {
    const file = path.join(dir, `${i}.json`);
    await writeFile(file, JSON.stringify(json));
    await t.rejects(NeuronCatalogue.load(file, 8), message, JSON.stringify(json));
  }
  const good = path.join(dir, 'good.json');
  await writeFile(good, JSON.stringify({ 1: 'plain', 2: { family: 'lexical', unknown: true } }));
  const catalogue = await NeuronCatalogue.load(good, 8);
  t.same(catalogue.get(1), { id: 1, label: 'plain' });
  t.same(
    catalogueLexical(catalogue).map((entry) => entry.id),
    [2],
  );
});

t.test('through the service: the article’s entries and lexical ids on a model of 512 neurons', async (t) => {
  // The article's catalogue restricted to ids < 512, on a copy of the random-weight tiny model
  // (clip.json's hash of neurons.json follows): GET /v1/neurons/{id} shows the entry with its source
  // and credit, and an emotion fit masks the lexical ids by default, saying they come from the catalogue.
  const { buildTestApp } = await import('./helpers/app.js');
  const { prepareTinyModel } = await import('./helpers/tiny-model.js');
  const { cp, writeFile } = await import('node:fs/promises');
  const { createHash } = await import('node:crypto');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'article-service-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'rn50x4-neurons.json');
  const written = await runPython(['-c', WRITE_RN50X4_CATALOGUE, file]);
  t.equal(written.code, 0, written.stderr);
  const article = JSON.parse(await readFile(file, 'utf8')) as Record<string, { family?: string }>;
  const subset = Object.fromEntries(Object.entries(article).filter(([id]) => Number(id) < 512));
  const lexicalIds = Object.entries(subset)
    .filter(([, entry]) => entry.family === 'lexical')
    .map(([id]) => Number(id))
    .sort((a, b) => a - b);
  const modelDir = path.join(dir, 'model');
  await cp((await prepareTinyModel({ seed: 1 })).modelDir, modelDir, { recursive: true });
  const text = JSON.stringify(subset);
  await writeFile(path.join(modelDir, 'neurons.json'), text);
  const manifest = JSON.parse(await readFile(path.join(modelDir, 'clip.json'), 'utf8')) as {
    files: Record<string, string>;
  };
  manifest.files['neurons.json'] = createHash('sha256').update(text).digest('hex');
  await writeFile(path.join(modelDir, 'clip.json'), JSON.stringify(manifest, null, 2));
  const app = await buildTestApp({ modelDir, dataDir: path.join(dir, 'data') });
  t.teardown(() => app.close());

  const neuron = (await app.inject('/v1/neurons/43')).json();
  const source =
    'distillpub/post--multimodal: neuron-hand-labels.json, lexical-neurons.json, neuron-top-words.json';
  t.same(neuron, {
    id: 43,
    label: '"A"',
    labelSource: 'published',
    family: 'lexical',
    topWords: ['alphabetical', 'authentic', 'authentication'],
    source,
    credit: CREDIT,
    labels: [{ label: '"A"', source: 'published', score: null, from: source, updatedAt: null }],
  });
  t.equal((await app.inject('/v1/neurons/89')).json().label, 'Donald Trump');

  const fit = await app.inject({
    method: 'POST',
    url: '/v1/emotions/fit',
    payload: { emotions: ['happy', 'sad', 'angry'], lambda: 0.05 },
  });
  t.equal(fit.statusCode, 200, fit.body.slice(0, 200));
  const body = fit.json();
  t.equal(body.excluded, lexicalIds.length, `${lexicalIds.length} article ids below 512 masked by default`);
  t.same(body.lexical.sources, ['catalogue'], 'from the catalogue (no word index here)');
  t.equal(body.lexical.catalogue, lexicalIds.length);
  t.match(body.lexical.detectedUnavailable, /word index/);
  for (const weights of Object.values(body.emotions) as { neuron: number }[][])
    for (const { neuron } of weights)
      if (lexicalIds.includes(neuron)) t.fail(`lexical neuron ${neuron} used`);
});

/** argv: labels file. build_catalogue of RN50 (no article data) and of RN50x4, with --labels. */
const WITH_LABELS = `
import json, sys
from tools.export.clip_model import RELEASED_CONFIGS
from tools.export.neurons import build_catalogue, LabelsError
out = {n: build_catalogue(RELEASED_CONFIGS[n], sys.argv[1]) for n in ("RN50", "RN50x4")}
try:
    build_catalogue(RELEASED_CONFIGS["RN50"], sys.argv[2])
except LabelsError as error:
    out["error"] = str(error)
print(json.dumps(out))
`;

t.test('--labels may mark a neuron lexical (user-supplied), on any model', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'labels-family-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { writeFile } = await import('node:fs/promises');
  const labels = path.join(dir, 'mine.json');
  await writeFile(labels, JSON.stringify({ 3: { family: 'lexical' }, 4: 'plain', 43: { label: 'A-words' } }));
  const bad = path.join(dir, 'bad.json');
  await writeFile(bad, JSON.stringify({ 3: { family: 'lexical', colour: 'red' } }));
  const result = await runPython(['-c', WITH_LABELS, labels, bad]);
  t.equal(result.code, 0, result.stderr);
  const out = JSON.parse(result.stdout) as Record<string, Record<string, Record<string, unknown>> | string>;
  const rn50 = out.RN50 as Record<string, Record<string, unknown>>;
  t.same(rn50['3'], { family: 'lexical', source: 'mine.json' });
  t.same(rn50['4'], { label: 'plain', source: 'mine.json' });
  const rn50x4 = out.RN50x4 as Record<string, Record<string, unknown>>;
  t.equal(rn50x4['43'].label, 'A-words', 'a user label over the article’s');
  t.equal(rn50x4['43'].family, 'lexical', 'the article’s family kept');
  t.match(rn50x4['43'].source, /^mine\.json \(label\); distillpub/);
  t.equal(rn50x4['3'].family, 'lexical', 'a user-supplied lexical neuron beside the article’s');
  t.match(rn50x4['3'].source, /^mine\.json \(family\); /);
  t.match(out.error, /neuron 3 has colour; expected a label or \{"label", "family"\}/);
});
