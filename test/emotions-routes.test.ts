/**
 * Emotion composition over HTTP, on the embedded toy-world model (models/toyworld) when it is there,
 * else on the shared random-weight reference model: the wheel and the default composition, one
 * emotion, the atlas, fits with each way of choosing λ, any concept set, and bad inputs (4xx).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { FEELINGS_WHEEL } from '../src/emotions/feelings-wheel.js';
import { buildTestApp } from './helpers/app.js';
import { repoRoot } from './helpers/tiny-model.js';

const TOYWORLD = path.join(repoRoot, 'models/toyworld');
const onToyworld = existsSync(path.join(TOYWORLD, 'clip.json'));
const app = await buildTestApp(onToyworld ? { modelDir: TOYWORLD } : {});
t.teardown(() => app.close());
t.comment(`model: ${onToyworld ? 'models/toyworld' : 'shared reference (random weights)'}`);

const FIVE = ['happy', 'sad', 'angry', 'surprised', 'sleepy'];

interface Weighted {
  neuron: number;
  weight: number;
  label?: string;
}

/** Counts onnxruntime runs of `target` from now on (keeping the metrics observer in place). */
function countModelRuns(target: typeof app): () => number {
  let count = 0;
  const previous = target.clip.runObserver;
  target.clip.runObserver = (graph, rows, ms) => {
    count += 1;
    previous?.(graph, rows, ms);
  };
  return () => count;
}

const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });

t.test('GET /v1/emotions: the wheel, the templates and the default composition (cached)', async (t) => {
  const first = await app.inject({ method: 'GET', url: '/v1/emotions' });
  t.equal(first.statusCode, 200, first.body.slice(0, 200));
  const body = first.json();
  t.same(body.wheel, FEELINGS_WHEEL);
  t.equal(body.templates.length, 3);
  t.equal(body.emotions.length, 126);
  for (const emotion of body.emotions)
    t.ok(emotion.neurons.length <= 5, `${emotion.name}: at most 5 neurons`);
  t.ok(
    body.emotions.filter((e: { neurons: Weighted[] }) => e.neurons.length > 0).length > 100,
    'most are nonempty',
  );
  // Lexical neurons are masked by default, as in the article: the service's one lexical set.
  t.comment(`lexical set of the default fit: ${JSON.stringify(body.lexical)}`);
  t.equal(body.excluded, body.lexical.neurons, 'the default fit masks the lexical set');
  t.ok(body.lexical.sources.includes('catalogue'), 'the catalogue is a source');
  const set = (await app.inject({ method: 'GET', url: '/v1/neurons/lexical' })).json();
  if (set.use) {
    t.same(body.lexical, set.use, 'the set GET /v1/neurons/lexical lists');
    const masked = new Set(set.set.map((n: { neuron: number }) => n.neuron));
    for (const emotion of body.emotions)
      for (const n of emotion.neurons as Weighted[])
        if (masked.has(n.neuron)) t.fail(`${n.neuron} is lexical`);
  }
  const runs = countModelRuns(app);
  const again = await app.inject({ method: 'GET', url: '/v1/emotions' });
  t.equal(again.json().fitId, body.fitId, 'the same default fit');
  t.equal(runs(), 0, 'served from the cache: no model run');
});

t.test('GET /v1/emotions with Redis down: the default fit is computed once, not per request', async (t) => {
  // Nothing listens on port 1: the shared cache answers nothing, the in-process tier still holds.
  const degraded = await buildTestApp({
    ...(onToyworld ? { modelDir: TOYWORLD } : {}),
    redisUrl: 'redis://127.0.0.1:1',
  });
  t.teardown(() => degraded.close());
  const first = await degraded.inject({ method: 'GET', url: '/v1/emotions' });
  t.equal(first.statusCode, 200, first.body.slice(0, 200));
  const runs = countModelRuns(degraded);
  for (const url of ['/v1/emotions', '/v1/emotions/jealous', '/v1/emotions/atlas?factors=2']) {
    const again = await degraded.inject({ method: 'GET', url });
    t.equal(again.statusCode, 200, url);
  }
  t.equal(runs(), 0, 'no text was encoded again');
});

t.test('GET /v1/emotions/{name}', async (t) => {
  const one = await app.inject({ method: 'GET', url: '/v1/emotions/Joyful' });
  t.equal(one.statusCode, 200);
  t.equal(one.json().name, 'joyful');
  t.same(one.json().cores, ['happy']);
  const spaced = await app.inject({ method: 'GET', url: '/v1/emotions/let%20down' });
  t.equal(spaced.statusCode, 200);
  t.equal(spaced.json().ring, 'middle');
  const unknown = await app.inject({ method: 'GET', url: '/v1/emotions/hungry' });
  t.equal(unknown.statusCode, 404);
  t.match(unknown.json().message, /unknown emotion "hungry"/);
});

t.test('GET /v1/emotions/atlas: 2 and 7 factors, deterministic layout', async (t) => {
  for (const factors of [2, 7]) {
    const response = await app.inject({ method: 'GET', url: `/v1/emotions/atlas?factors=${factors}` });
    t.equal(response.statusCode, 200, response.body.slice(0, 200));
    const atlas = response.json();
    t.equal(atlas.factors, factors);
    t.equal(atlas.factorTops.length, factors);
    t.equal(atlas.emotions.length, 126);
    for (const emotion of atlas.emotions) {
      t.equal(emotion.loadings.length, factors);
      t.ok(emotion.loadings.every((v: number) => v >= 0) && Number.isFinite(emotion.x + emotion.y));
    }
    t.ok(atlas.iterations > 0 && atlas.objective >= 0);
  }
  const bad = await app.inject({ method: 'GET', url: '/v1/emotions/atlas?factors=3' });
  t.equal(bad.statusCode, 400);
});

t.test('POST /v1/emotions/fit: fixed λ, target support, CV, masking; stable fit ids', async (t) => {
  const fixed = await post('/v1/emotions/fit', { emotions: FIVE, lambda: 0.05 });
  t.equal(fixed.statusCode, 200, fixed.body.slice(0, 300));
  const body = fixed.json();
  t.equal(body.lambda, 0.05);
  t.same(Object.keys(body.emotions), FIVE);
  t.equal(body.samples, 15);
  for (const name of FIVE) t.ok(body.fits[name].converged, `${name} converged`);
  const again = await post('/v1/emotions/fit', { emotions: FIVE, lambda: 0.05 });
  t.equal(again.json().fitId, body.fitId, 'same request, same id');
  const other = await post('/v1/emotions/fit', { emotions: FIVE, lambda: 0.06 });
  t.not(other.json().fitId, body.fitId, 'another λ, another id');

  const sized = await post('/v1/emotions/fit', { emotions: FIVE, neuronsPerEmotion: 2 });
  t.equal(sized.json().lambda, null, 'per-class λ');
  for (const name of FIVE) t.ok(sized.json().emotions[name].length <= 2);

  const cv = await post('/v1/emotions/fit', { emotions: FIVE, cv: 3 });
  t.equal(cv.statusCode, 200);
  t.equal(cv.json().cv.folds, 3);
  t.equal(cv.json().lambda, cv.json().cv.lambda1se);

  const used = sized.json().emotions.happy.map((n: Weighted) => n.neuron);
  const masked = await post('/v1/emotions/fit', {
    emotions: FIVE,
    neuronsPerEmotion: 2,
    excludeLexical: used,
  });
  t.equal(masked.json().excluded, new Set(used).size);
  for (const name of FIVE)
    for (const n of masked.json().emotions[name] as Weighted[])
      t.notOk(used.includes(n.neuron), 'masked neuron');
  const lexical = await post('/v1/emotions/fit', { emotions: FIVE, excludeLexical: true });
  t.equal(lexical.statusCode, 200);
  const byDefault = await post('/v1/emotions/fit', { emotions: FIVE });
  t.equal(byDefault.json().fitId, lexical.json().fitId, 'excludeLexical is true by default');
  t.equal(byDefault.json().excluded, byDefault.json().lexical.neurons, 'and says what it masked');
  const unmasked = await post('/v1/emotions/fit', { emotions: FIVE, excludeLexical: false });
  t.equal(unmasked.json().excluded, 0, 'excludeLexical: false masks nothing');
  t.notOk('lexical' in unmasked.json());
  t.equal(body.model, 'one-vs-rest', 'one-vs-rest by default');
  t.equal(body.scaling, 'shared', 'shared scaling by default');
  const perNeuron = await post('/v1/emotions/fit', { emotions: FIVE, scaling: 'per-neuron' });
  t.equal(perNeuron.statusCode, 200);
  t.equal(perNeuron.json().scaling, 'per-neuron');
  t.not(perNeuron.json().fitId, body.fitId, 'the scaling is part of the fit id');
});

t.test('POST /v1/emotions/fit and /v1/concepts/sparse with model "multinomial"', async (t) => {
  // Per-neuron scaling: on these 15 separable prompts the shared scaling's path separates the
  // classes with fewer than 2 neurons each and never reaches the target.
  const fit = await post('/v1/emotions/fit', {
    emotions: FIVE,
    model: 'multinomial',
    neuronsPerEmotion: 2,
    scaling: 'per-neuron',
  });
  t.equal(fit.statusCode, 200, fit.body.slice(0, 300));
  const body = fit.json();
  t.equal(body.model, 'multinomial');
  t.type(body.lambda, 'number', 'one λ shared by all classes');
  const counts = FIVE.map((name) => (body.emotions[name] as Weighted[]).length);
  t.ok(counts.reduce((a, b) => a + b, 0) / FIVE.length >= 2, `mean neurons per emotion ${counts.join(', ')}`);
  for (const name of FIVE) t.equal(body.fits[name].lambda, body.lambda);
  const ovr = await post('/v1/emotions/fit', { emotions: FIVE, neuronsPerEmotion: 2 });
  t.not(body.fitId, ovr.json().fitId, 'a different fit id from one-vs-rest');
  const fixed = await post('/v1/emotions/fit', { emotions: FIVE, model: 'multinomial', lambda: 0.05 });
  t.equal(fixed.json().lambda, 0.05);
  t.ok(FIVE.every((name) => fixed.json().fits[name].converged));
  const concepts = await post('/v1/concepts/sparse', {
    concepts: {
      red: ['red', 'the colour red'],
      blue: ['blue', 'the colour blue'],
      star: ['a star', 'a drawing of a star'],
    },
    model: 'multinomial',
    lambda: 0.01,
  });
  t.equal(concepts.statusCode, 200, concepts.body.slice(0, 300));
  t.equal(concepts.json().model, 'multinomial');
  const tooLarge = await post('/v1/emotions/fit', { model: 'multinomial', cv: 10 });
  t.equal(tooLarge.statusCode, 400, 'the whole wheel with 10-fold CV would outlast a request');
  t.match(tooLarge.json().message, /too large for one request.*one-vs-rest/);
  const bad = await post('/v1/emotions/fit', { emotions: FIVE, model: 'softmax' });
  t.equal(bad.statusCode, 400);
  t.match(bad.json().message, /model/);
});

t.test('POST /v1/concepts/sparse: any concepts', async (t) => {
  const response = await post('/v1/concepts/sparse', {
    concepts: {
      red: ['red', 'the colour red', 'a red patch'],
      blue: ['blue', 'the colour blue', 'a blue patch'],
      circle: ['a circle', 'a round circle', 'a drawing of a circle'],
    },
    neuronsPerConcept: 3,
  });
  t.equal(response.statusCode, 200, response.body.slice(0, 300));
  t.same(Object.keys(response.json().concepts), ['red', 'blue', 'circle']);
  t.equal(response.json().samples, 9);
});

t.test('bad inputs are 4xx with a message', async (t) => {
  const cases: [string, object, RegExp][] = [
    ['/v1/emotions/fit', { emotions: ['happy', 'hungry'] }, /unknown emotion "hungry"/],
    ['/v1/emotions/fit', { emotions: FIVE, lambda: -1 }, /lambda/],
    ['/v1/emotions/fit', { emotions: FIVE, templates: ['i am {}', 'no placeholder'] }, /has no \{\}/],
    ['/v1/emotions/fit', { emotions: ['happy'] }, /at least 2 concepts/],
    ['/v1/emotions/fit', { emotions: ['happy', 'Happy'] }, /at least 2 concepts/],
    ['/v1/emotions/fit', { emotions: FIVE, lambda: 0.1, cv: 3 }, /at most one of/],
    ['/v1/emotions/fit', { emotions: FIVE, cv: 1 }, /cv/],
    ['/v1/emotions/fit', { emotions: Array(300).fill('happy') }, /emotions/],
    ['/v1/emotions/fit', { emotions: FIVE, excludeLexical: [1e7] }, /out of range/],
    [
      '/v1/emotions/fit',
      { emotions: FIVE, colour: 'red' },
      /the request has a field that is not allowed: "colour" \(allowed: [^)]*emotions/,
    ],
    ['/v1/emotions/fit', { emotions: FIVE, scaling: 'log' }, /scaling/],
    ['/v1/concepts/sparse', { concepts: { a: ['x', 'y'], b: ['z'] } }, /"b" needs at least 2 prompts/],
    ['/v1/concepts/sparse', { concepts: { a: ['x', 'y'] } }, /at least 2 concepts/],
    ['/v1/concepts/sparse', { concepts: { a: ['x', 'y'], b: ['z', 'w'] }, cv: 5 }, /cv/],
  ];
  for (const [url, payload, message] of cases) {
    const response = await post(url, payload);
    t.ok(
      response.statusCode >= 400 && response.statusCode < 500,
      `${JSON.stringify(payload)} → ${response.statusCode}`,
    );
    t.match(response.json().message, message);
  }
});

t.test(
  'on the toy world, an expression’s composition holds that expression’s neuron',
  { skip: !onToyworld && 'no embedded toy-world model' },
  async (t) => {
    // The toy world draws five expressions and maps feelings-wheel words onto them in captions
    // (tools/toyworld/world.py); the catalogue labels each neuron by the concept whose held-out images
    // drive it most (family "expression" for faces). The compositions are the default fit of the
    // whole wheel (GET /v1/emotions/{name}): 126 emotions, the article's three templates.
    const catalogue = JSON.parse(readFileSync(path.join(TOYWORLD, 'neurons.json'), 'utf8')) as Record<
      string,
      { label?: string; family?: string }
    >;
    const expressionOf: Record<string, string> = {
      happy: 'happy',
      sad: 'sad',
      surprised: 'surprised',
      angry: 'angry',
      sleepy: 'sleepy',
      joyful: 'happy',
      lonely: 'sad',
      furious: 'angry',
      shocked: 'surprised',
      tired: 'sleepy',
    };
    const held: string[] = [];
    for (const [word, expression] of Object.entries(expressionOf)) {
      const response = await app.inject({ method: 'GET', url: `/v1/emotions/${word}` });
      t.equal(response.statusCode, 200);
      const neurons = response.json().neurons as Weighted[];
      t.comment(
        `${word}: ${neurons.map((n) => `${n.neuron} ${n.label ?? ''} ${n.weight.toFixed(2)}`).join(', ')}`,
      );
      const holds = neurons.some(
        (n) =>
          n.weight > 0 &&
          catalogue[n.neuron]?.family === 'expression' &&
          catalogue[n.neuron]?.label === expression,
      );
      if (holds) held.push(word);
    }
    // Measured on the committed model: 8 of 10. With the lexical set masked (the default since
    // 2026-12-06: 328 detected neurons on its own words, 45 of its 96 expression neurons among them)
    // angry and furious miss; unmasked, furious and tired missed (docs/emotion-compositions.md).
    // With per-neuron standardisation, 3 of 10. The default fit counts work, never time, so the
    // same words hold on a loaded machine (it was ≥ 8 when fits were cut by the clock, and a loaded
    // CI machine once got 7).
    t.ok(held.length >= 8, `${held.length} of 10 hold their expression's neuron: ${held.join(', ')}`);
    t.same(
      Object.keys(expressionOf).filter((word) => !held.includes(word)),
      ['angry', 'furious'],
      'the words that miss are the measured ones',
    );
  },
);
