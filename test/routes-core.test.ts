/**
 * The core routes over HTTP (app.inject) on the model exported from the shared reference
 * checkpoint: answers are compared with OpenAI's own outputs in expected.json.
 */
import t from 'tap';
import sharp from 'sharp';
import { buildTestApp, readReferencePng, referenceExpectations } from './helpers/app.js';
import { relativeError } from './helpers/tiny-model.js';

const expected = referenceExpectations();
const app = await buildTestApp();
t.teardown(() => app.close());

const post = (url: string, payload: unknown) =>
  app.inject({ method: 'POST', url, payload: payload as object });
const base64Of = (file: string) => readReferencePng(file).toString('base64');

t.test('GET /health reports the model, provider and cache', async (t) => {
  const res = await app.inject('/health');
  t.equal(res.statusCode, 200);
  const body = res.json();
  t.equal(body.status, 'ok');
  t.match(body.model.sha256, /^[0-9a-f]{64}$/);
  t.equal(body.executionProvider, 'cpu');
  t.same(body.cache, { backend: 'memory', ok: true });
});

t.test('GET /v1/model describes the neuron layer', async (t) => {
  const body = (await app.inject('/v1/model')).json();
  t.match(body, {
    neuronCount: 256,
    neuronGrid: [2, 2],
    embedDim: 48,
    imageSize: 64,
    contextLength: 77,
    vocabSize: 49408,
    neuronLayer: 'visual.layer4',
    executionProvider: 'cpu',
  });
  t.ok(Math.abs(body.logitScale - expected.zero_shot.logit_scale) < 0.01);
});

t.test('POST /v1/tokenize gives CLIP’s ids, unpadded', async (t) => {
  const texts = expected.prompts.map((prompt) => prompt.text);
  const res = await post('/v1/tokenize', { texts });
  t.equal(res.statusCode, 200);
  const { tokens } = res.json() as { tokens: { ids: number[]; truncated: boolean }[] };
  tokens.forEach((row, i) => {
    t.same(row.ids, expected.prompts[i].tokens, texts[i]);
    t.equal(row.truncated, false);
  });
  const long = (await post('/v1/tokenize', { texts: ['word '.repeat(400)] })).json();
  t.equal(long.tokens[0].ids.length, 77);
  t.equal(long.tokens[0].ids.at(-1), 49407, 'end token kept last');
  t.equal(long.tokens[0].truncated, true);
});

t.test('POST /v1/embed/text matches OpenAI’s text features', async (t) => {
  const texts = expected.prompts.map((prompt) => prompt.text);
  const res = await post('/v1/embed/text', { texts });
  t.equal(res.statusCode, 200);
  const { embeddings } = res.json() as { embeddings: number[][] };
  t.equal(embeddings.length, texts.length);
  embeddings.forEach((embedding, i) => {
    const error = relativeError(embedding, expected.prompts[i].text_features);
    t.ok(error < 1e-4, `${texts[i]}: relative error ${error.toExponential(2)}`);
  });
  const again = (await post('/v1/embed/text', { texts: [texts[0]] })).json();
  t.same(again.embeddings[0], embeddings[0], 'a cached answer equals the computed one');
});

t.test('POST /v1/embed/image matches OpenAI’s image features and layer4 means', async (t) => {
  for (const image of expected.images) {
    const res = await post('/v1/embed/image?neurons=true', { image: base64Of(image.png) });
    t.equal(res.statusCode, 200, image.word);
    const body = res.json() as { embedding: number[]; neurons: number[] };
    t.ok(relativeError(body.embedding, image.image_features) < 1e-4, `${image.word} embedding`);
    t.ok(relativeError(body.neurons, image.layer4_spatial_mean) < 1e-4, `${image.word} neuron means`);
  }
  const plain = (await post('/v1/embed/image', { image: base64Of(expected.images[0].png) })).json();
  t.notOk('neurons' in plain, 'neurons only when asked');
});

t.test('POST /v1/embed/image takes a multipart upload and other formats', async (t) => {
  const png = readReferencePng(expected.images[0].png);
  const boundary = '----mmn-test-boundary';
  const payload = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="yellow.png"\r\n` +
        'Content-Type: image/png\r\n\r\n',
    ),
    png,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const res = await app.inject({
    method: 'POST',
    url: '/v1/embed/image',
    payload,
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  });
  t.equal(res.statusCode, 200, res.body);
  t.ok(relativeError(res.json().embedding, expected.images[0].image_features) < 1e-4);
  const webp = await sharp(png).webp({ lossless: true }).toBuffer();
  const fromWebp = await post('/v1/embed/image', { image: webp.toString('base64') });
  t.equal(fromWebp.statusCode, 200);
  t.ok(relativeError(fromWebp.json().embedding, expected.images[0].image_features) < 1e-4, 'lossless WebP');
});

t.test('the non-square resize case follows PIL’s bicubic and centre crop', async (t) => {
  const res = await post('/v1/embed/image', { image: base64Of(expected.extra_resize_case.png) });
  t.equal(res.statusCode, 200);
  const error = relativeError(res.json().embedding, expected.extra_resize_case.image_features);
  t.ok(error < 1e-3, `relative error ${error.toExponential(2)}`);
});

t.test('POST /v1/classify gives OpenAI’s zero-shot probabilities', async (t) => {
  const { rows, cols, probs_per_image } = expected.zero_shot;
  for (const [r, word] of rows.entries()) {
    const image = expected.images.find((candidate) => candidate.word === word);
    if (!image) continue;
    const res = await post('/v1/classify', { image: base64Of(image.png), labels: cols, template: '{}' });
    t.equal(res.statusCode, 200);
    const { probabilities } = res.json() as { probabilities: { label: string; p: number }[] };
    t.same(
      probabilities.map((entry) => entry.label),
      cols,
      'labels in the order given',
    );
    const error = Math.max(...probabilities.map((entry, i) => Math.abs(entry.p - probs_per_image[r][i])));
    t.ok(error < 1e-4, `${word}: max |Δp| ${error.toExponential(2)}`);
  }
});

t.test('GET /v1/raster draws a word as a PNG of the model’s size', async (t) => {
  const res = await app.inject('/v1/raster?text=yellow');
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^image\/png/);
  const meta = await sharp(res.rawPayload).metadata();
  t.equal(meta.width, 64);
  t.equal(meta.height, 64);
  const again = await app.inject('/v1/raster?text=yellow');
  t.same(again.rawPayload, res.rawPayload, 'deterministic');
});

t.test('bad input gives a 4xx with a message, never a 500', async (t) => {
  const tooLong = 'x'.repeat(2001);
  const cases: [string, string, unknown, number][] = [
    ['POST', '/v1/tokenize', {}, 400],
    ['POST', '/v1/tokenize', { texts: [] }, 400],
    ['POST', '/v1/tokenize', { texts: [''] }, 400],
    ['POST', '/v1/tokenize', { texts: [1, 2] }, 400],
    ['POST', '/v1/tokenize', { texts: 'a dog' }, 400],
    ['POST', '/v1/tokenize', { texts: Array(257).fill('a') }, 400],
    ['POST', '/v1/tokenize', { texts: [tooLong] }, 400],
    ['POST', '/v1/tokenize', { texts: ['a'], extra: true }, 400],
    ['POST', '/v1/embed/text', { texts: [null] }, 400],
    ['POST', '/v1/embed/text', { texts: Array(257).fill('a') }, 400],
    ['POST', '/v1/embed/image', {}, 400],
    ['POST', '/v1/embed/image', { image: '' }, 400],
    ['POST', '/v1/embed/image', { image: 'not base64 at all!' }, 400],
    ['POST', '/v1/embed/image', { image: Buffer.from('hello, not an image').toString('base64') }, 400],
    ['POST', '/v1/classify', { image: base64Of(expected.images[0].png) }, 400],
    ['POST', '/v1/classify', { image: base64Of(expected.images[0].png), labels: [] }, 400],
    [
      'POST',
      '/v1/classify',
      { image: base64Of(expected.images[0].png), labels: ['a'], template: 'no slot' },
      400,
    ],
    ['GET', '/v1/raster', undefined, 400],
    ['GET', '/v1/raster?text=', undefined, 400],
    ['GET', '/v1/raster?text=%20%20', undefined, 400],
    ['GET', '/v1/nothing-here', undefined, 404],
  ];
  for (const [method, url, payload, status] of cases) {
    const res = await app.inject({ method: method as 'GET' | 'POST', url, payload: payload as object });
    t.equal(res.statusCode, status, `${method} ${url} ${JSON.stringify(payload)?.slice(0, 60)}`);
    const body = res.json() as { message?: string };
    t.type(body.message, 'string');
    t.ok(body.message && body.message.length > 0);
  }
});

t.test('malformed JSON, wrong content types and huge images', async (t) => {
  const broken = await app.inject({
    method: 'POST',
    url: '/v1/tokenize',
    payload: '{"texts": [',
    headers: { 'content-type': 'application/json' },
  });
  t.equal(broken.statusCode, 400);
  const text = await app.inject({
    method: 'POST',
    url: '/v1/tokenize',
    payload: 'texts=a',
    headers: { 'content-type': 'text/plain' },
  });
  t.equal(text.statusCode, 415);
  const huge = Buffer.alloc(10 * 1024 * 1024 + 1024, 7).toString('base64');
  const tooBig = await post('/v1/embed/image', { image: huge });
  t.equal(tooBig.statusCode, 413);
  t.match(tooBig.json().message, /10 MiB \(MAX_IMAGE_BYTES\)/);
});
