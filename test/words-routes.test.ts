/**
 * The word routes over HTTP on the embedded toy model (its words.txt is indexed automatically at
 * start): neighbours, both arithmetic methods with masks, a neuron's words, lexical neurons, the
 * region statistics, the admin build routes, 409 while the index is missing, and 4xx on bad input.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { App } from '../src/app.js';
import { DEFAULT_MODEL_DIR } from '../src/config.js';
import { defaultWords } from '../src/words/vocabulary.js';
import { buildTestApp } from './helpers/app.js';

const ADMIN = 'words-admin-key';
const admin = { authorization: `Bearer ${ADMIN}` };
const toyModel = existsSync(path.join(DEFAULT_MODEL_DIR, 'words.txt'));
const tmp = await mkdtemp(path.join(os.tmpdir(), 'words-routes-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));

/** Builds the app with WORD_* variables set only while its plugins read them. */
async function appWith(env: Record<string, string>, dataDir: string): Promise<App> {
  const saved = Object.fromEntries(Object.keys(env).map((name) => [name, process.env[name]]));
  Object.assign(process.env, env);
  try {
    return await buildTestApp({ modelDir: DEFAULT_MODEL_DIR, dataDir, adminApiKeys: [ADMIN] });
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

async function waitUntilReady(app: App): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const status = (await app.inject({ method: 'GET', url: '/v1/admin/index', headers: admin })).json();
    if (status.state === 'ready') return;
    if (status.state === 'failed' || Date.now() > deadline)
      throw new Error(`index: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

t.test(
  'routes on the automatically built index',
  { skip: !toyModel && 'the toy model is not there' },
  async (t) => {
    const app = await appWith({ WORD_INDEX_AUTOBUILD: 'auto' }, path.join(tmp, 'auto'));
    t.teardown(() => app.close());
    await waitUntilReady(app);
    const get = (url: string) => app.inject({ method: 'GET', url });
    const arithmetic = (body: object) =>
      app.inject({ method: 'POST', url: '/v1/words/arithmetic', payload: body });

    const near = await get('/v1/words/neighbors?word=red&k=5&mask=none');
    t.equal(near.statusCode, 200);
    t.equal(near.json().neighbors.length, 5);
    t.ok(near.json().inVocabulary);
    t.notOk(
      near.json().neighbors.some((hit: { word: string }) => hit.word === 'red'),
      'the word itself is excluded',
    );
    const scores = near.json().neighbors.map((hit: { score: number }) => hit.score);
    t.same(
      scores,
      [...scores].sort((a, b) => b - a),
      'best first',
    );
    const unseen = await get('/v1/words/neighbors?word=' + encodeURIComponent('zebra crossing'));
    t.equal(unseen.statusCode, 200);
    t.equal(unseen.json().inVocabulary, false, 'a word outside the vocabulary is rastered on the fly');

    const expression = '"red circle" - red + blue';
    for (const method of ['add', 'mul']) {
      for (const mask of ['none', 'lexical', [1, 2, 3]]) {
        const response = await arithmetic({ expression, k: 247, method, mask });
        t.equal(response.statusCode, 200, `${method} ${JSON.stringify(mask)}`);
        const ranked: string[] = response.json().results.map((hit: { word: string }) => hit.word);
        t.notOk(
          ranked.includes('red circle') || ranked.includes('red') || ranked.includes('blue'),
          'inputs excluded',
        );
        const rank = ranked.indexOf('blue circle') + 1;
        t.ok(
          rank >= 1 && rank <= 5,
          `${method}/${JSON.stringify(mask)}: "blue circle" ranks ${rank} of ${ranked.length}`,
        );
      }
    }
    const add = (await arithmetic({ expression, mask: 'none' })).json();
    const rank = add.results.findIndex((hit: { word: string }) => hit.word === 'blue circle') + 1;
    t.ok(rank >= 1 && rank <= 3, `3CosAdd without mask: "blue circle" in the top 3 (rank ${rank})`);
    const star = (await arithmetic({ expression: '"green star" - green + yellow', k: 5 })).json();
    t.ok(
      star.results.some((hit: { word: string }) => hit.word === 'yellow star'),
      `"yellow star" among the top 5: ${star.results.map((hit: { word: string }) => hit.word).join(', ')}`,
    );
    t.same(add.terms, [
      { sign: 1, text: 'red circle' },
      { sign: -1, text: 'red' },
      { sign: 1, text: 'blue' },
    ]);

    const top = await get('/v1/neurons/3/top-words?k=4');
    t.equal(top.statusCode, 200);
    t.equal(top.json().top.length, 4);
    t.ok(top.json().top[0].activation >= top.json().top[3].activation);
    t.ok(top.json().bottom[0].activation <= top.json().bottom[3].activation);

    const lexical = (await get('/v1/neurons/lexical?threshold=0.2')).json();
    t.equal(lexical.neurons.length, app.clip.neuronCount);
    t.same(
      lexical.flagged,
      lexical.neurons
        .filter((n: { score: number }) => n.score >= 0.2)
        .map((n: { neuron: number }) => n.neuron),
    );
    const stats = (await get('/v1/neurons/stats')).json();
    t.equal(
      stats.buckets.reduce((sum: number, bucket: { neurons: number }) => sum + bucket.neurons, 0),
      app.clip.neuronCount,
    );

    const bad: [string, () => Promise<{ statusCode: number }>][] = [
      ['empty expression', () => arithmetic({ expression: '' })],
      ['blank expression', () => arithmetic({ expression: '   ' })],
      ['two operators', () => arithmetic({ expression: 'red + - blue' })],
      ['trailing operator', () => arithmetic({ expression: 'red +' })],
      ['unknown mask id', () => arithmetic({ expression: 'red', mask: [99999] })],
      ['unknown method', () => arithmetic({ expression: 'red', method: 'pow' })],
      ['k = 0', () => get('/v1/words/neighbors?word=red&k=0')],
      ['k too large', () => get('/v1/words/neighbors?word=red&k=5000')],
      ['missing word', () => get('/v1/words/neighbors')],
      ['blank word', () => get('/v1/words/neighbors?word=%20')],
      ['bad mask name', () => get('/v1/words/neighbors?word=red&mask=all')],
      ['neuron out of range', () => get('/v1/neurons/99999/top-words')],
      ['threshold out of range', () => get('/v1/neurons/lexical?threshold=7')],
    ];
    for (const [what, call] of bad) t.equal((await call()).statusCode, 400, what);
    t.equal(
      (await app.inject({ method: 'POST', url: '/v1/admin/index' })).statusCode,
      401,
      'admin needs a key',
    );
  },
);

t.test('409 with instructions while the index is missing; admin build', async (t) => {
  const list = path.join(tmp, 'big.txt');
  await writeFile(list, (await defaultWords(6000)).join('\n'));
  const app = await appWith({ WORD_VOCAB_FILE: list, WORD_INDEX_AUTOBUILD: 'false' }, path.join(tmp, 'big'));
  t.teardown(() => app.close());
  const missing = await app.inject({ method: 'GET', url: '/v1/words/neighbors?word=red' });
  t.equal(missing.statusCode, 409);
  t.match(missing.json().message, /npm run index-words/);
  t.match(missing.json().message, /POST \/v1\/admin\/index/);
  for (const url of ['/v1/neurons/lexical', '/v1/neurons/stats', '/v1/neurons/1/top-words']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 409, url);
  }
  const started = await app.inject({ method: 'POST', url: '/v1/admin/index', headers: admin });
  t.equal(started.statusCode, 202);
  t.equal(started.json().state, 'building');
  t.equal(started.json().progress.total, started.json().vocabulary.size, 'the 202 carries the progress');
  t.ok(started.json().vocabulary.size >= 6000, 'the configured list');
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const status = (await app.inject({ method: 'GET', url: '/v1/admin/index', headers: admin })).json();
  t.equal(status.state, 'building');
  t.ok(status.progress.done > 0 && status.progress.total > 6000, `progress ${status.progress.done}`);
  const during = await app.inject({ method: 'GET', url: '/v1/words/neighbors?word=red' });
  t.equal(during.statusCode, 409);
  t.match(during.json().message, /being built \(activations: \d+\/\d+ words/);
});
