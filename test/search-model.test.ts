/**
 * The maximal-text search on real models. On the small reference model (random weights): the
 * score of the result is the neuron's attribution of its text, a direction e_i·2 finds the same
 * text as neuron i with twice the score, a seed reproduces the search, and hill climbing beats
 * both random search and the best single vocabulary token at the same number of evaluations.
 * On the embedded toyworld model (skipped until models/toyworld/ exists): the maximal text of each
 * colour's direction over neurons, W·t_c, names the colour or a synonym for most colours, and so
 * does the maximal text of each colour word's own neuron (the highest in the word's attribution
 * among the neurons the catalogue labels with the colour), which also beats the word itself.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { attribution } from '../src/attribution/bilinear.js';
import { createCache } from '../src/cache/index.js';
import { ClipModel } from '../src/clip/clip-model.js';
import { DEFAULT_MODEL_DIR, loadConfig } from '../src/config.js';
import { randomSearch } from '../src/search/baselines.js';
import { searchMaxText, searchSetup } from '../src/search/max-text.js';
import { normaliseRequest } from '../src/search/request.js';
import { referenceModelDir } from './helpers/app.js';

const options = { ...loadConfig({}), executionProviders: ['cpu' as const], intraOpThreads: 1 };
const quiet = { info() {}, warn() {}, error() {} };

t.test('reference model', async (t) => {
  const model = await ClipModel.load(await referenceModelDir(), options);
  t.teardown(() => model.release());
  const cache = createCache({ ttlSeconds: 600, logger: quiet });
  const C = model.neuronCount;

  t.test('the score is the attribution of the text; a direction e_i·2 doubles it', async (t) => {
    const request = normaliseRequest({ neuron: 6, steps: 25, batch: 32 }, C);
    const result = await searchMaxText(model, cache, request);
    t.ok(result.ids.length >= 1 && result.ids.length <= 6);
    t.same(model.tokenizer.encode(result.text).ids.slice(1, -1), result.ids, 'ids are the text’s own tokens');
    const [embedding] = await model.embedTexts([result.text]);
    t.ok(Math.abs(attribution(model.bilinear, embedding, 'unit')[6] - result.score) < 1e-4);
    for (const { text, score } of result.top.slice(0, 3)) {
      const [e] = await model.embedTexts([text]);
      t.ok(Math.abs(attribution(model.bilinear, e, 'unit')[6] - score) < 1e-4, text);
    }
    const direction = new Array<number>(C).fill(0);
    direction[6] = 2;
    const doubled = await searchMaxText(
      model,
      cache,
      normaliseRequest({ direction, steps: 25, batch: 32 }, C),
    );
    t.equal(doubled.text, result.text);
    t.ok(Math.abs(doubled.score - 2 * result.score) < 1e-4);
  });

  t.test('a seed reproduces the search', async (t) => {
    const request = normaliseRequest({ neuron: 21, steps: 20, batch: 16, seed: 9 }, C);
    const a = await searchMaxText(model, cache, request);
    const b = await searchMaxText(model, cache, request);
    t.same({ ...a, elapsedMs: 0 }, { ...b, elapsedMs: 0 });
    const c = await searchMaxText(model, cache, { ...request, seed: 10 });
    t.notSame(a.curve, c.curve);
  });

  t.test('beats random search and the best single token at equal evaluations', async (t) => {
    let wins = 0;
    const neurons = [1, 40, 77, 130, 201];
    for (const neuron of neurons) {
      const request = normaliseRequest({ neuron, steps: 40, batch: 32, seed: 1 }, C);
      const climbed = await searchMaxText(model, cache, request);
      const setup = await searchSetup(model, cache, request);
      const random = await randomSearch({
        ...setup,
        evaluations: climbed.evaluations,
        length: request.length,
        batch: request.batch,
        seed: 1,
      });
      const [single] = await setup.scorer.score([[setup.pool[0]]]);
      t.comment(
        `neuron ${neuron}: climb ${climbed.score.toFixed(4)}, random ${random.score.toFixed(4)}, word ${single.toFixed(4)}`,
      );
      if (climbed.score > random.score && climbed.score > single) wins++;
    }
    t.ok(wins >= 4, `hill climbing wins on ${wins} of ${neurons.length} neurons`);
  });
});

const COLOUR_WORDS: Record<string, string[]> = {
  red: ['red', 'crimson', 'scarlet', 'cherry', 'tomato'],
  orange: ['orange', 'tangerine', 'pumpkin', 'carrot', 'apricot'],
  yellow: ['yellow', 'lemon', 'banana', 'gold', 'sunflower'],
  green: ['green', 'lime', 'grass', 'leaf', 'emerald'],
  blue: ['blue', 'sky', 'ocean', 'navy', 'sapphire'],
  purple: ['purple', 'violet', 'grape', 'lavender', 'plum'],
  pink: ['pink', 'rose', 'flamingo', 'blush', 'magenta'],
  brown: ['brown', 'chocolate', 'coffee', 'wood', 'cocoa'],
};

const embedded = existsSync(path.join(DEFAULT_MODEL_DIR, 'clip.json'));
const names = (text: string, colour: string) =>
  COLOUR_WORDS[colour].some((word) => text.toLowerCase().includes(word));

t.test(
  'embedded model: maximal texts of colours',
  { skip: !embedded && 'models/toyworld/ has not landed' },
  async (t) => {
    const model = await ClipModel.load(DEFAULT_MODEL_DIR, options);
    t.teardown(() => model.release());
    const cache = createCache({ ttlSeconds: 600, logger: quiet });
    const C = model.neuronCount;

    t.test('the maximal text of each colour direction W·t_c names the colour', async (t) => {
      let named = 0;
      for (const colour of Object.keys(COLOUR_WORDS)) {
        const [embedding] = await model.embedTexts([colour]);
        const direction = Array.from(attribution(model.bilinear, embedding, 'unit'));
        const result = await searchMaxText(model, cache, normaliseRequest({ direction, steps: 60 }, C));
        t.comment(`${colour}: "${result.text}" ${result.score.toFixed(3)}`);
        if (names(result.text, colour)) named++;
      }
      t.ok(named >= 6, `${named} of 8 colour directions named`);
    });

    t.test('each colour word’s own neuron: its maximal text names the colour', async (t) => {
      // The neuron a user finds for a colour: the one /v1/attribution/text ranks highest for the
      // colour word among those the catalogue labels with that colour (the image side).
      const catalogue = JSON.parse(
        readFileSync(path.join(DEFAULT_MODEL_DIR, 'neurons.json'), 'utf8'),
      ) as Record<string, { label?: string }>;
      let tried = 0;
      let named = 0;
      for (const colour of Object.keys(COLOUR_WORDS)) {
        const [embedding] = await model.embedTexts([colour]);
        const a = attribution(model.bilinear, embedding, 'unit');
        const ranked = Array.from(a.keys()).sort((i, j) => a[j] - a[i]);
        const neuron = ranked.find((i) => catalogue[i]?.label === colour);
        if (neuron === undefined) continue;
        const request = normaliseRequest({ neuron, steps: 60 }, C);
        const result = await searchMaxText(model, cache, request);
        const setup = await searchSetup(model, cache, request);
        const [wordScore] = await setup.scorer.score([model.tokenizer.encode(colour).ids.slice(1, -1)]);
        t.ok(
          result.score >= wordScore,
          `${colour}: the search beats the word itself (${wordScore.toFixed(3)})`,
        );
        const hit = names(result.text, colour);
        t.comment(
          `${colour} (neuron ${neuron}, rank ${ranked.indexOf(neuron) + 1}): "${result.text}" ${result.score.toFixed(3)} ${hit ? 'names it' : ''}`,
        );
        tried++;
        if (hit) named++;
      }
      t.equal(tried, 8, 'every colour has a neuron labelled with it');
      t.ok(named >= 5, `${named} of ${tried} colour neurons' maximal texts name their colour`);
    });
  },
);
