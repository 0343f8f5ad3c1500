/**
 * POST /v1/interventions on the embedded model (models/toyworld): edits at the neuron layer against
 * an independent computation (the exported trunk and head run here with onnxruntime-node, the maps
 * edited by the test's own loops; the labels' logits from /v1/embed/text), the blank-image check of
 * /v1/attribution/verify as one case of it, a multipart upload, and bad inputs.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import t from 'tap';
import { buildTestApp } from './helpers/app.js';
import { openToyworld } from './helpers/toyworld.js';
import { repoRoot } from './helpers/tiny-model.js';

const TOYWORLD = path.join(repoRoot, 'models/toyworld');
const LABELS = ['red', 'green', 'blue', 'yellow'];

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

t.test(
  'interventions on the embedded model',
  { skip: existsSync(path.join(TOYWORLD, 'clip.json')) ? false : 'no embedded model' },
  async (t) => {
    // No lexical set is needed here: the word index is not built (it would share the 2 cores).
    process.env.WORD_INDEX_AUTOBUILD = 'false';
    const app = await buildTestApp({ modelDir: TOYWORLD, maxEventLoopDelayMs: 0 });
    t.teardown(() => app.close());
    const model = await openToyworld(TOYWORLD);
    t.teardown(() => model.release());
    const { manifest } = model.directory;
    const S = manifest.image_size;
    const C = manifest.neuron_count;
    const [gh, gw] = manifest.neuron_grid;
    const cells = gh * gw;

    // A 64 × 64 picture (no resize): the word "blue" in red ink.
    const raster = await app.inject({ method: 'GET', url: '/v1/raster?text=blue&ink=red' });
    const png = raster.rawPayload;
    const image = png.toString('base64');

    t.test('the edited embedding and logits equal an independent computation', async (t) => {
      const edits = [
        { neuron: 5, op: 'scale', value: 2.5 },
        { neuron: 7, op: 'zero' },
        { neuron: 9, op: 'add', value: 1.5, position: { row: 1, col: 0 } },
        { neuron: 11, op: 'set', value: 3 },
        { neuron: 11, op: 'add', value: -1, position: { row: 0, col: 1 } },
      ];
      const response = await app.inject({
        method: 'POST',
        url: '/v1/interventions',
        payload: { image, edits, labels: LABELS, templates: ['{}'] },
      });
      t.equal(response.statusCode, 200, response.body);
      const body = response.json();

      // Reference: trunk → maps, edited here, → head, in sessions of the test's own.
      const { data } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const pixels = new Float32Array(3 * S * S);
      for (let p = 0; p < S * S; p++)
        for (let c = 0; c < 3; c++)
          pixels[c * S * S + p] = (data[p * 3 + c] / 255 - manifest.mean[c]) / manifest.std[c];
      const trunk = await model.trunk.run({ pixel_values: new ort.Tensor('float32', pixels, [1, 3, S, S]) });
      const maps = Float32Array.from(trunk.neurons.data as Float32Array);
      const head = async (m: Float32Array) =>
        (await model.head.run({ neurons: new ort.Tensor('float32', m, [1, C, gh, gw]) })).image_embeds
          .data as Float32Array;
      const before = await head(maps);
      const edited = maps.slice();
      for (let k = 0; k < cells; k++) {
        edited[5 * cells + k] *= 2.5;
        edited[7 * cells + k] = 0;
        edited[11 * cells + k] = 3;
      }
      edited[9 * cells + 1 * gw + 0] += 1.5;
      edited[11 * cells + 0 * gw + 1] -= 1;
      const after = await head(edited);
      const close = (a: number[], b: Float32Array) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
      t.ok(close(body.embeddingBefore, before) < 1e-4, `before: ${close(body.embeddingBefore, before)}`);
      t.ok(close(body.embedding, after) < 1e-4, `after: ${close(body.embedding, after)}`);
      t.ok(close(body.embedding, before) > 1e-3, 'the edits change the embedding');

      const texts = (
        await app.inject({ method: 'POST', url: '/v1/embed/text', payload: { texts: LABELS } })
      ).json().embeddings as number[][];
      const scale = manifest.logit_scale as number;
      const softmax = (logits: number[]) => {
        const max = Math.max(...logits);
        const e = logits.map((l) => Math.exp(l - max));
        const s = e.reduce((a, b) => a + b, 0);
        return e.map((v) => v / s);
      };
      const logitsBefore = texts.map((text) => scale * cosine(before, text));
      const logitsAfter = texts.map((text) => scale * cosine(after, text));
      const [pBefore, pAfter] = [softmax(logitsBefore), softmax(logitsAfter)];
      body.labels.forEach((row: Record<string, number | string>, j: number) => {
        t.equal(row.label, LABELS[j]);
        t.ok(Math.abs((row.logitBefore as number) - logitsBefore[j]) < 1e-3, `${LABELS[j]} logit before`);
        t.ok(Math.abs((row.logitAfter as number) - logitsAfter[j]) < 1e-3, `${LABELS[j]} logit after`);
        t.ok(Math.abs((row.logitChange as number) - (logitsAfter[j] - logitsBefore[j])) < 1e-3);
        t.ok(Math.abs((row.before as number) - pBefore[j]) < 1e-4);
        t.ok(Math.abs((row.after as number) - pAfter[j]) < 1e-4);
      });
      t.equal(body.predictedBefore, LABELS[pBefore.indexOf(Math.max(...pBefore))]);

      const noEmbedding = await app.inject({
        method: 'POST',
        url: '/v1/interventions',
        payload: { image, edits, labels: LABELS, templates: ['{}'], embedding: false },
      });
      t.notOk('embedding' in noEmbedding.json());
      t.same(noEmbedding.json().labels, body.labels);
    });

    t.test('the blank-image check is one case: add at every position on a white image', async (t) => {
      const verify = await app.inject({
        method: 'POST',
        url: '/v1/attribution/verify',
        payload: { text: 'red', neurons: [3, 40], delta: 2 },
      });
      t.equal(verify.statusCode, 200, verify.body);
      const white = await sharp({ create: { width: S, height: S, channels: 3, background: '#ffffff' } })
        .png()
        .toBuffer();
      for (const row of verify.json().neurons as { neuron: number; after: number }[]) {
        const response = await app.inject({
          method: 'POST',
          url: '/v1/interventions',
          payload: {
            image: white.toString('base64'),
            edits: [{ neuron: row.neuron, op: 'add', value: 2 }],
            labels: ['red', 'blue'],
            templates: ['{}'],
          },
        });
        t.equal(response.statusCode, 200, response.body);
        const red = response.json().labels[0];
        t.ok(
          Math.abs(red.logitAfter - row.after) < 1e-4,
          `neuron ${row.neuron}: ${red.logitAfter} vs ${row.after}`,
        );
        t.ok(Math.abs(red.logitBefore - verify.json().before) < 1e-4);
      }
    });

    t.test('a multipart upload', async (t) => {
      const boundary = 'interventions-test-boundary';
      const field = (name: string, value: string) =>
        `--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
      const payload = Buffer.concat([
        Buffer.from(
          `--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="a.png"\r\ncontent-type: image/png\r\n\r\n`,
        ),
        png,
        Buffer.from('\r\n'),
        Buffer.from(field('edits', JSON.stringify([{ neuron: 1, op: 'zero' }]))),
        Buffer.from(field('labels', JSON.stringify(LABELS))),
        Buffer.from(`--${boundary}--\r\n`),
      ]);
      const response = await app.inject({
        method: 'POST',
        url: '/v1/interventions',
        payload,
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      });
      t.equal(response.statusCode, 200, response.body);
      t.equal(response.json().labels.length, LABELS.length);
    });

    t.test(
      'several images: each answer equals that of the image alone; multipart repeats "image"',
      async (t) => {
        const other = (await app.inject({ method: 'GET', url: '/v1/raster?text=red&ink=blue' })).rawPayload;
        const edits = [
          { neuron: 5, op: 'scale', value: 3 },
          { neuron: 9, op: 'add', value: 1, position: { row: 0, col: 0 } },
        ];
        const alone = await Promise.all(
          [png, other].map(async (bytes) => {
            const r = await app.inject({
              method: 'POST',
              url: '/v1/interventions',
              payload: { image: bytes.toString('base64'), edits, labels: LABELS, embedding: false },
            });
            t.equal(r.statusCode, 200, r.body);
            return r.json();
          }),
        );
        const several = await app.inject({
          method: 'POST',
          url: '/v1/interventions',
          payload: { images: [image, other.toString('base64')], edits, labels: LABELS, embedding: false },
        });
        t.equal(several.statusCode, 200, several.body);
        const { images } = several.json();
        t.equal(images.length, 2);
        // One batch through the trunk and the head: equal to the single answers up to float rounding.
        images.forEach((answer: { labels: { after: number; logitAfter: number }[] }, i: number) => {
          t.equal(answer.labels.length, LABELS.length);
          answer.labels.forEach((row, j) =>
            t.ok(Math.abs(row.logitAfter - alone[i].labels[j].logitAfter) < 1e-4, `image ${i} ${LABELS[j]}`),
          );
        });
        t.not(images[0].predictedBefore, undefined);

        const boundary = 'interventions-several';
        const file = (bytes: Buffer) =>
          Buffer.concat([
            Buffer.from(
              `--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="a.png"\r\ncontent-type: image/png\r\n\r\n`,
            ),
            bytes,
            Buffer.from('\r\n'),
          ]);
        const field = (name: string, value: string) =>
          Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`);
        const multipart = await app.inject({
          method: 'POST',
          url: '/v1/interventions',
          payload: Buffer.concat([
            file(png),
            file(other),
            field('edits', JSON.stringify(edits)),
            field('labels', JSON.stringify(LABELS)),
            field('embedding', 'false'),
            Buffer.from(`--${boundary}--\r\n`),
          ]),
          headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
        });
        t.equal(multipart.statusCode, 200, multipart.body);
        t.same(multipart.json(), several.json(), 'the same answer as the JSON request');
      },
    );

    t.test('bad inputs are 400s naming what is allowed', async (t) => {
      const cases: [string, Record<string, unknown>, RegExp][] = [
        [
          'neuron out of range',
          { edits: [{ neuron: 512, op: 'zero' }] },
          /edits\[0\]\.neuron 512 is out of range \(0 to 511\)/,
        ],
        [
          'negative neuron',
          { edits: [{ neuron: -1, op: 'zero' }] },
          /edits\[0\]\.neuron must be an integer of at least 0/,
        ],
        [
          'unknown op',
          { edits: [{ neuron: 1, op: 'multiply', value: 2 }] },
          /"set", "scale", "add" or "zero"/,
        ],
        [
          'no value',
          { edits: [{ neuron: 1, op: 'scale' }] },
          /edits\[0\] \(op "scale"\) needs a finite value/,
        ],
        ['zero with a value', { edits: [{ neuron: 1, op: 'zero', value: 1 }] }, /takes no value/],
        [
          'position outside the grid',
          { edits: [{ neuron: 1, op: 'set', value: 1, position: { row: 2, col: 0 } }] },
          /outside the 2 × 2 grid \(row 0 to 1, col 0 to 1\)/,
        ],
        ['no edits', { edits: [] }, /edits must have at least 1 item/],
        [
          'a value past 32-bit floats',
          { edits: [{ neuron: 1, op: 'set', value: 1e308 }] },
          /the edits overflow the model's 32-bit floats: image 0's edited embedding is not finite/,
        ],
        [
          'values whose head overflows',
          { edits: Array.from({ length: 512 }, (_, neuron) => ({ neuron, op: 'set', value: 1e38 })) },
          /overflow/,
        ],
        [
          'a value that is no number',
          { edits: [{ neuron: 1, op: 'add', value: 'NaN' }] },
          /value must be a number/,
        ],
        ['empty labels', { labels: [] }, /labels must have at least 1 item/],
        ['template without {}', { templates: ['a photo'] }, /must contain \{\}/],
        ['extra field', { colour: 'red' }, /not allowed: "colour"/],
        ['image and images', { images: [image] }, /image \(one\) or images \(several\), not both/],
        ['no image', { image: undefined }, /send the image \(image, or images for several\)/],
      ];
      for (const [name, override, message] of cases) {
        const response = await app.inject({
          method: 'POST',
          url: '/v1/interventions',
          payload: { image, edits: [{ neuron: 1, op: 'zero' }], labels: LABELS, ...override },
        });
        t.equal(response.statusCode, 400, `${name}: ${response.body}`);
        t.match(response.json().message, message, name);
      }
      const huge = await app.inject({
        method: 'POST',
        url: '/v1/interventions',
        payload: { images: Array(33).fill(image), edits: [{ neuron: 1, op: 'zero' }], labels: LABELS },
      });
      t.equal(huge.statusCode, 413, huge.body);
      t.match(huge.json().message, /33 images: an intervention takes at most 32 images per request/);
    });
  },
);
