/**
 * Attribution routes on the model exported from the shared reference checkpoint: W·t from the
 * service against OpenAI's numbers (expected.json, computed in float64 from the PyTorch weights).
 */
import t from 'tap';
import { buildTestApp, readReferencePng, referenceExpectations } from './helpers/app.js';
import { relativeError, topK } from './helpers/tiny-model.js';
import { attribution, topAndBottom } from '../src/attribution/bilinear.js';

const expected = referenceExpectations();
const app = await buildTestApp();
t.teardown(() => app.close());

const post = (url: string, payload: unknown) =>
  app.inject({ method: 'POST', url, payload: payload as object });

interface Ranked {
  neuron: number;
  value: number;
  share: number;
}
interface TextResult {
  text: string;
  top: Ranked[];
  bottom: Ranked[];
  vector?: number[];
}

const norm = (v: number[]) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));

t.test('W·t (normalize "none") equals the reference, with the same top-10 neurons', async (t) => {
  const texts = expected.prompts.map((prompt) => prompt.text);
  const res = await post('/v1/attribution/text', { texts, normalize: 'none', full: true, topK: 10 });
  t.equal(res.statusCode, 200);
  const { results } = res.json() as { results: TextResult[] };
  results.forEach((result, i) => {
    const reference = expected.prompts[i];
    const error = relativeError(result.vector!, reference.attribution);
    t.ok(error < 1e-4, `${result.text}: relative error ${error.toExponential(2)}`);
    t.same(
      result.top.map((entry) => entry.neuron).sort((a, b) => a - b),
      [...reference.top10_ids].sort((a, b) => a - b),
      `${result.text}: top-10 set`,
    );
    t.same(
      result.top.map((entry) => entry.neuron),
      topK(result.vector!, 10),
      'top is sorted by value',
    );
    const mass = result.vector!.reduce((sum, x) => sum + Math.abs(x), 0);
    t.ok(Math.abs(result.top[0].share - result.top[0].value / mass) < 1e-6, 'share = value / Σ|a|');
    t.ok(result.bottom[0].value <= result.bottom[1].value, 'bottom starts at the most negative');
  });
});

t.test('normalize "unit" divides by |t| and is the default', async (t) => {
  const prompt = expected.prompts[0];
  const res = await post('/v1/attribution/text', { texts: [prompt.text], full: true });
  const [result] = (res.json() as { results: TextResult[] }).results;
  const scale = norm(prompt.text_features);
  const error = relativeError(
    result.vector!,
    prompt.attribution.map((x) => x / scale),
  );
  t.ok(error < 1e-4, `relative error ${error.toExponential(2)}`);
  t.equal(result.top.length, 10, 'topK defaults to 10');
  t.notOk(
    (await post('/v1/attribution/text', { texts: ['x'] })).json().results[0].vector,
    'no vector unless full',
  );
});

t.test('templates average the vectors of the filled-in prompts', async (t) => {
  const [a, b] = ['a photo of {}', '{} on my face'];
  const res = await post('/v1/attribution/text', { texts: ['jealous'], templates: [a, b], full: true });
  const mean = (res.json() as { results: TextResult[] }).results[0].vector!;
  const single = (
    await post('/v1/attribution/text', {
      texts: ['a photo of jealous', 'jealous on my face'],
      full: true,
    })
  ).json() as { results: TextResult[] };
  const expectedMean = single.results[0].vector!.map((x, i) => (x + single.results[1].vector![i]) / 2);
  t.ok(relativeError(mean, expectedMean) < 1e-6);
});

t.test('POST /v1/attribution/image: contributions, their sum, the terms of the logit', async (t) => {
  const { rows, cols } = expected.zero_shot;
  const image = expected.images[0];
  const column = cols.indexOf('yellow');
  const res = await post('/v1/attribution/image', {
    image: readReferencePng(image.png).toString('base64'),
    text: 'yellow',
    topK: 5,
  });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json() as {
    top: (Ranked & { logit: number })[];
    bottom: (Ranked & { logit: number })[];
    sum: number;
    imageNorm: number;
    logitScale: number;
    logit: number;
    bilinearLogit: number;
    biasLogit: number;
    residual: number;
  };
  t.equal(body.top.length, 5);
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-4 * Math.max(1, Math.abs(b));
  t.ok(
    close(body.bilinearLogit, (body.logitScale * body.sum) / body.imageNorm),
    'bilinear logit = scale·sum/|e|',
  );
  t.ok(
    close(body.bilinearLogit + body.biasLogit + body.residual, body.logit),
    'the terms add up to the logit',
  );
  for (const row of [...body.top, ...body.bottom]) {
    t.ok(
      close(row.logit, (row.value * body.logitScale) / body.imageNorm),
      `neuron ${row.neuron} in logit units`,
    );
  }
  const logits = (expected.zero_shot as unknown as { logits_per_image: number[][] }).logits_per_image;
  const reference = logits[rows.indexOf(image.word)][column];
  t.ok(
    Math.abs(body.logit - reference) < 1e-3 * Math.max(1, Math.abs(reference)),
    `logit ${body.logit} vs ${reference}`,
  );
  const prompt = expected.prompts.find((p) => p.text === 'yellow')!;
  const a = prompt.attribution.map((x) => x / norm(prompt.text_features));
  const x = image.layer4_spatial_mean;
  const contributions = a.map((value, i) => value * x[i]);
  const sum = contributions.reduce((s, v) => s + v, 0);
  t.ok(Math.abs(body.sum - sum) < 1e-4 * Math.max(1, Math.abs(sum)), `sum ${body.sum} vs ${sum}`);
  t.equal(body.top[0].neuron, topK(contributions, 1)[0]);
  t.ok(Number.isFinite(body.bilinearLogit));
});

t.test('POST /v1/attribution/verify runs the intervention on a blank image', async (t) => {
  const res = await post('/v1/attribution/verify', { text: 'yellow', topK: 4, delta: 5 });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json() as {
    delta: number;
    before: number;
    neurons: { neuron: number; after: number; rose: boolean; attribution: number }[];
    rose: number;
    total: number;
  };
  t.equal(body.delta, 5);
  t.equal(body.total, 4);
  t.equal(body.rose, body.neurons.filter((row) => row.after > body.before).length);
  const top = (await post('/v1/attribution/text', { texts: ['yellow'], topK: 4 })).json().results[0].top;
  t.same(
    body.neurons.map((row) => row.neuron),
    top.map((entry: Ranked) => entry.neuron),
    'defaults to the text’s top neurons',
  );
  const given = (await post('/v1/attribution/verify', { text: 'yellow', neurons: [3, 7] })).json();
  t.same(
    given.neurons.map((row: { neuron: number }) => row.neuron),
    [3, 7],
  );
  t.ok(given.delta > 0, 'a default delta from the blank image’s activations');
});

t.test('GET /v1/neurons/{id}', async (t) => {
  t.equal((await app.inject('/v1/neurons/5')).statusCode, 404, 'no catalogue entry');
  t.equal((await app.inject('/v1/neurons/256')).statusCode, 400, 'out of range');
  t.equal((await app.inject('/v1/neurons/-1')).statusCode, 400);
  t.equal((await app.inject('/v1/neurons/abc')).statusCode, 400);
  t.equal((await app.inject('/v1/neurons/1.5')).statusCode, 400);
});

t.test('bad attribution requests give 4xx with a message', async (t) => {
  const image = readReferencePng(expected.images[0].png).toString('base64');
  const cases: [string, unknown][] = [
    ['/v1/attribution/text', {}],
    ['/v1/attribution/text', { texts: [] }],
    ['/v1/attribution/text', { texts: ['a'], topK: 0 }],
    ['/v1/attribution/text', { texts: ['a'], topK: 100000 }],
    ['/v1/attribution/text', { texts: ['a'], normalize: 'l2' }],
    ['/v1/attribution/text', { texts: ['a'], templates: ['no placeholder'] }],
    ['/v1/attribution/text', { texts: ['a'], templates: [] }],
    ['/v1/attribution/text', { texts: ['a'], full: 'yes' }],
    ['/v1/attribution/image', { text: 'a' }],
    ['/v1/attribution/image', { image, text: '' }],
    ['/v1/attribution/image', { image: 'AAAA', text: 'a' }],
    ['/v1/attribution/verify', {}],
    ['/v1/attribution/verify', { text: 'a', neurons: [256] }],
    ['/v1/attribution/verify', { text: 'a', neurons: [-1] }],
    ['/v1/attribution/verify', { text: 'a', neurons: [] }],
    ['/v1/attribution/verify', { text: 'a', delta: 'big' }],
    ['/v1/attribution/verify', { text: 'a', delta: 1e9 }],
  ];
  for (const [url, payload] of cases) {
    const res = await post(url, payload);
    t.ok(
      res.statusCode >= 400 && res.statusCode < 500,
      `${url} ${JSON.stringify(payload).slice(0, 50)} → ${res.statusCode}`,
    );
    t.ok((res.json() as { message: string }).message.length > 0);
  }
});

t.test('W·t equals the naive row-by-row product, for any number of neurons', async (t) => {
  for (const C of [1, 3, 4, 7, 9]) {
    const D = 5;
    const W = Float32Array.from({ length: C * D }, (_, i) => Math.sin(i * 1.7) * 3);
    const vector = Float32Array.from({ length: D }, (_, d) => Math.cos(d) + 0.5);
    const naive = new Float32Array(C);
    for (let i = 0; i < C; i++) {
      let sum = 0;
      for (let d = 0; d < D; d++) sum += W[i * D + d] * vector[d];
      naive[i] = sum;
    }
    t.same(Array.from(attribution(W, vector, 'none')), Array.from(naive), `C = ${C}`);
  }
});

t.test('top and bottom neurons are the ends of a full sort (value, then index), ties included', async (t) => {
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  for (const C of [1, 2, 5, 64, 513]) {
    // Values rounded to one decimal, so many neurons tie.
    const v = Float32Array.from({ length: C }, () => Math.round(random() * 10) / 10);
    const order = Array.from(v.keys()).sort((i, j) => v[j] - v[i] || i - j);
    for (const k of [1, 3, 10, C, C + 5]) {
      const count = Math.min(k, C);
      const { top, bottom } = topAndBottom(v, k);
      t.same(
        top.map((entry) => entry.neuron),
        order.slice(0, count),
        `top ${k} of ${C}`,
      );
      t.same(
        bottom.map((entry) => entry.neuron),
        order.slice(-count).reverse(),
        `bottom ${k} of ${C}`,
      );
    }
  }
});

t.test('the chained W·t graph (onnxruntime Gemm) equals the product in JavaScript', async (t) => {
  const prompts = Array.from({ length: 37 }, (_, r) => `a test prompt number ${r}`);
  const rows = prompts.map((prompt) => app.clip.tokenizer.encode(prompt).ids);
  const results = await app.clip.textAttributions(rows);
  t.equal(results.length, rows.length);
  for (const [r, { embedding, product }] of results.entries()) {
    const reference = attribution(app.clip.bilinear, embedding, 'none');
    t.equal(product.length, app.clip.neuronCount);
    const error = relativeError(Array.from(product), Array.from(reference));
    if (error > 1e-6) t.fail(`row ${r}: relative error ${error}`);
  }
  t.pass(`${rows.length} rows within 1e-6 of the JavaScript product`);
});
