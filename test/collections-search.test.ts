/**
 * Collection queries on the embedded toy model: retrieval by text, by an image (of the collection,
 * uploaded, base64), by a neuron (mean, max), by a direction over the neurons (dense W·t and a
 * sparse one; dot and cosine) and by an embedding, each ranked against a recomputation here from
 * what /v1/embed/image, /v1/embed/text and /v1/attribution/text give for the same bytes and texts
 * (the maxima, which no other route gives, are read back from the row-major file); the heatmap
 * cache (a miss, then a hit with the same PNG), the heatmap's decode going through the image
 * routes' one decode bound, the heatmap of an uploaded image; bad inputs; and the retrieval
 * engine's 8-bit screen against a brute-force cosine on clustered rows with near-ties.
 */
import t, { type Test } from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { App } from '../src/app.js';
import { centerCrop, decodeImage, resizeShortestSide } from '../src/clip/image.js';
import { DEFAULT_MODEL_DIR } from '../src/config.js';
import { EmbeddingIndex } from '../src/collections/embedding-index.js';
import { CollectionReader } from '../src/collections/reader.js';
import { FILES } from '../src/collections/store.js';
import { buildTestApp } from './helpers/app.js';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'collections-search-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));

const saved = { ...process.env };
// Blocks of 2 rows with 7 images: columns come from the column-major blocks and the last row file.
Object.assign(process.env, {
  WORD_INDEX_AUTOBUILD: 'false',
  COLLECTION_COLUMN_BLOCK: '2',
  COLLECTION_BATCH: '4',
});
const app: App = await buildTestApp({ modelDir: DEFAULT_MODEL_DIR, dataDir: path.join(tmp, 'data') });
for (const name of ['WORD_INDEX_AUTOBUILD', 'COLLECTION_COLUMN_BLOCK', 'COLLECTION_BATCH']) {
  if (saved[name] === undefined) delete process.env[name];
  else process.env[name] = saved[name];
}
t.teardown(() => app.close());

function multipart(parts: { field: string; value: string | Buffer; filename?: string }[]) {
  const boundary = 'search-test-boundary';
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const file = part.filename === undefined ? '' : `; filename="${part.filename}"`;
    chunks.push(
      Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${part.field}"${file}\r\n\r\n`),
      Buffer.isBuffer(part.value) ? part.value : Buffer.from(part.value),
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    payload: Buffer.concat(chunks),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  };
}

async function picture(background: string, shape: string, width: number, height: number): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <rect width="100%" height="100%" fill="${background}"/>
    <circle cx="${width / 3}" cy="${height / 2}" r="${Math.min(width, height) / 4}" fill="${shape}"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

const images = [
  { name: 'red-on-blue.png', category: 'warm', bytes: await picture('#2040c0', '#e02020', 80, 64) },
  { name: 'yellow-on-green.png', category: 'warm', bytes: await picture('#20a040', '#f0e020', 64, 64) },
  { name: 'white-on-black.png', category: 'mono', bytes: await picture('#000000', '#ffffff', 64, 96) },
  { name: 'black-on-white.png', category: 'mono', bytes: await picture('#ffffff', '#000000', 100, 70) },
  { name: 'purple.png', category: 'cold', bytes: await picture('#8020a0', '#4020f0', 64, 64) },
  { name: 'orange-on-grey.png', category: 'warm', bytes: await picture('#808080', '#ff8000', 70, 70) },
  { name: 'cyan-on-navy.png', category: 'cold', bytes: await picture('#102060', '#20e0e0', 90, 60) },
];
const outsider = await picture('#f0f0a0', '#c02080', 72, 72);

async function embed(bytes: Buffer): Promise<{ neurons: number[]; embedding: number[] }> {
  const answer = await app.inject({
    method: 'POST',
    url: '/v1/embed/image?neurons=true',
    ...multipart([{ field: 'image', value: bytes, filename: 'x.png' }]),
  });
  if (answer.statusCode !== 200) throw new Error(answer.body);
  return answer.json();
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));
/** Image ids by score, highest first, ties by the smaller id. */
const ranking = (scores: number[], k = scores.length) =>
  scores
    .map((_, i) => i)
    .sort((a, b) => scores[b] - scores[a] || a - b)
    .slice(0, k);

interface Result {
  imageId: number;
  name: string;
  category: string | null;
  score: number;
  thumbnailUrl: string;
}

/** The search's ranks and scores equal those computed here. */
function checkRanks(
  t: Test,
  body: { results: Result[] },
  scores: number[],
  k: number,
  what: string,
  tolerance = 1e-5,
) {
  t.same(
    body.results.map((r) => r.imageId),
    ranking(scores, k),
    `${what}: ranked as computed here`,
  );
  for (const r of body.results) {
    t.ok(
      Math.abs(r.score - scores[r.imageId]) <= tolerance * Math.max(1, Math.abs(scores[r.imageId])),
      `${what}: image ${r.imageId} score ${r.score} vs ${scores[r.imageId]}`,
    );
    t.equal(r.name, images[r.imageId].name);
    t.equal(r.category, images[r.imageId].category);
    t.equal(r.thumbnailUrl, `/v1/collections/shapes/images/${r.imageId}/thumbnail`);
  }
}

await app.inject({ method: 'POST', url: '/v1/collections', payload: { name: 'shapes' } });
const parts = images.flatMap((image) => [
  { field: 'category', value: image.category },
  { field: 'image', value: image.bytes, filename: image.name },
]);
const upload = await app.inject({
  method: 'POST',
  url: '/v1/collections/shapes/images',
  ...multipart(parts),
});
if (upload.statusCode !== 202) throw new Error(upload.body);
await app.collections.settled('shapes');
const expected = await Promise.all(images.map((image) => embed(image.bytes)));
const C = app.clip.neuronCount;

t.test('by a neuron: mean and max, against the embed route and the stored maxima', async (t) => {
  const reader = new CollectionReader(app.collections.store, await app.collections.get('shapes'));
  const maxima = await Promise.all(images.map((_, i) => reader.row(FILES.maxima, i)));
  for (const neuron of [3, 100, 511]) {
    const mean = await app.inject({ url: `/v1/collections/shapes/search?neuron=${neuron}&k=5` });
    t.equal(mean.statusCode, 200, mean.body);
    t.match(mean.json(), { collection: 'shapes', mode: 'neuron', measure: 'mean', neuron, images: 7 });
    checkRanks(
      t,
      mean.json(),
      expected.map((e) => e.neurons[neuron]),
      5,
      `neuron ${neuron} by mean`,
    );
    const max = await app.inject({ url: `/v1/collections/shapes/search?neuron=${neuron}&by=max&k=7` });
    t.equal(max.statusCode, 200, max.body);
    t.match(max.json(), { mode: 'neuron', measure: 'max' });
    checkRanks(
      t,
      max.json(),
      maxima.map((row) => row[neuron]),
      7,
      `neuron ${neuron} by max`,
      0,
    );
  }
  const posted = await app.inject({
    method: 'POST',
    url: '/v1/collections/shapes/search',
    payload: { neuron: 100, by: 'max', k: 3 },
  });
  t.equal(posted.statusCode, 200, posted.body);
  checkRanks(
    t,
    posted.json(),
    maxima.map((row) => row[100]),
    3,
    'POST neuron 100 by max',
    0,
  );
});

t.test('by text and by an embedding: cosine with the text embedding', async (t) => {
  const text = 'a yellow circle';
  const t0 = (await app.inject({ method: 'POST', url: '/v1/embed/text', payload: { texts: [text] } })).json()
    .embeddings[0] as number[];
  const scores = expected.map((e) => cosine(e.embedding, t0));
  const byText = await app.inject({ url: `/v1/collections/shapes/search?text=${encodeURIComponent(text)}` });
  t.equal(byText.statusCode, 200, byText.body);
  t.match(byText.json(), { mode: 'text', measure: 'cosine', text, complete: true });
  checkRanks(t, byText.json(), scores, 7, 'text');
  const postedText = await app.inject({
    method: 'POST',
    url: '/v1/collections/shapes/search',
    payload: { text, k: 2 },
  });
  checkRanks(t, postedText.json(), scores, 2, 'POST text');
  const byEmbedding = await app.inject({
    method: 'POST',
    url: '/v1/collections/shapes/search',
    payload: { embedding: t0.map((v) => v * 3), k: 4 },
  });
  t.equal(byEmbedding.statusCode, 200, byEmbedding.body);
  t.match(byEmbedding.json(), { mode: 'embedding', measure: 'cosine' });
  checkRanks(t, byEmbedding.json(), scores, 4, 'embedding (scaled: cosine ignores the norm)');
});

t.test('by an image: one of the collection, uploaded, base64', async (t) => {
  for (const imageId of [2, 6]) {
    const answer = await app.inject({ url: `/v1/collections/shapes/search?image=${imageId}&k=7` });
    t.equal(answer.statusCode, 200, answer.body);
    t.match(answer.json(), { mode: 'image', measure: 'cosine', imageId });
    const scores = expected.map((e) => cosine(e.embedding, expected[imageId].embedding));
    checkRanks(t, answer.json(), scores, 7, `image ${imageId}`);
    t.equal(answer.json().results[0].imageId, imageId, 'the image itself first');
    const posted = await app.inject({
      method: 'POST',
      url: '/v1/collections/shapes/search',
      payload: { imageId, k: 3 },
    });
    checkRanks(t, posted.json(), scores, 3, `POST imageId ${imageId}`);
  }
  const outside = await embed(outsider);
  const scores = expected.map((e) => cosine(e.embedding, outside.embedding));
  const uploaded = await app.inject({
    method: 'POST',
    url: '/v1/collections/shapes/search',
    ...multipart([
      { field: 'k', value: '5' },
      { field: 'image', value: outsider, filename: 'outsider.png' },
    ]),
  });
  t.equal(uploaded.statusCode, 200, 'uploaded');
  t.match(uploaded.json(), { mode: 'image', measure: 'cosine' });
  checkRanks(t, uploaded.json(), scores, 5, 'an uploaded image');
  const base64 = await app.inject({
    method: 'POST',
    url: '/v1/collections/shapes/search',
    payload: { image: outsider.toString('base64') },
  });
  checkRanks(t, base64.json(), scores, 7, 'a base64 image');
});

t.test('by a direction over the neurons: W·t (dense) and a sparse one, dot and cosine', async (t) => {
  const attribution = await app.inject({
    method: 'POST',
    url: '/v1/attribution/text',
    payload: { texts: ['a white circle'], full: true },
  });
  t.equal(attribution.statusCode, 200, attribution.body);
  const wt = attribution.json().results[0].vector as number[];
  t.equal(wt.length, C);
  const sparse = new Array<number>(C).fill(0);
  sparse[5] = 1.5;
  sparse[200] = -0.75;
  sparse[400] = 2;
  for (const [name, direction] of [
    ['W·t', wt],
    ['sparse', sparse],
  ] as const) {
    for (const score of ['dot', 'cosine'] as const) {
      const answer = await app.inject({
        method: 'POST',
        url: '/v1/collections/shapes/search',
        payload: { direction, ...(score === 'cosine' ? { score } : {}), k: 7 },
      });
      t.equal(answer.statusCode, 200, answer.body);
      t.match(answer.json(), { mode: 'direction', measure: score });
      const scores = expected.map((e) =>
        score === 'dot' ? dot(e.neurons, direction) : cosine(e.neurons, direction),
      );
      checkRanks(t, answer.json(), scores, 7, `${name}, ${score}`, 1e-4);
    }
  }
});

t.test('bad search requests: 400 or 404 naming what is allowed', async (t) => {
  const get: [string, number, RegExp][] = [
    ['', 400, /give one of text, neuron or image/],
    ['?text=a&neuron=3', 400, /only one of .*got text, neuron/],
    ['?neuron=512', 400, /neuron 512 is out of range \(0 to 511\)/],
    ['?neuron=1.5', 400, /neuron/],
    ['?neuron=-1', 400, /neuron/],
    ['?image=7', 404, /image 7 not found in collection "shapes" \(ids 0 to 6/],
    ['?text=a&by=max', 400, /by \(mean or max\) applies to a neuron search only/],
    ['?neuron=3&by=median', 400, /by must be/],
    ['?neuron=3&k=0', 400, /k must be an integer from 1 to 200/],
    ['?neuron=3&k=201', 400, /k must be an integer from 1 to 200/],
    ['?neuron=3&colour=red', 400, /colour/],
  ];
  for (const [query, status, message] of get) {
    const answer = await app.inject({ url: `/v1/collections/shapes/search${query}` });
    t.equal(answer.statusCode, status, `GET ${query}: ${answer.body}`);
    t.match(answer.json().message, message, `GET ${query}`);
  }
  const missing = await app.inject({ url: '/v1/collections/nope/search?neuron=1' });
  t.equal(missing.statusCode, 404);
  t.match(missing.json().message, /collection "nope" not found/);

  const zeros = new Array<number>(C).fill(0);
  const post: [unknown, number, RegExp][] = [
    [{}, 400, /give one of text, image \(a file or base64\), imageId, neuron, direction/],
    [{ text: 'a', imageId: 1 }, 400, /only one of .*got text, imageId/],
    [{ direction: [1, 2, 3] }, 400, /direction has 3 values; it must have 512 \(the number of neurons\)/],
    [{ direction: zeros }, 400, /direction is all zeros/],
    [{ direction: ['NaN', ...zeros.slice(1)] }, 400, /direction/],
    [{ embedding: [1, 2] }, 400, /embedding has 2 values; it must have 128/],
    [
      { embedding: [0.5, ...new Array<number>(127).fill(0)], score: 'cosine' },
      400,
      /score .* direction search only/,
    ],
    [{ imageId: 99 }, 404, /image 99 not found/],
    [{ neuron: 3, k: 500 }, 400, /k must be an integer from 1 to 200/],
    [{ image: Buffer.from('not an image').toString('base64') }, 400, /not a decodable image/],
    [{ image: '***' }, 400, /base64/],
    [{ neuron: 3, extra: 1 }, 400, /extra/],
  ];
  for (const [payload, status, message] of post) {
    const answer = await app.inject({
      method: 'POST',
      url: '/v1/collections/shapes/search',
      payload: payload as object,
    });
    t.equal(answer.statusCode, status, `POST ${JSON.stringify(payload).slice(0, 60)}: ${answer.body}`);
    t.match(answer.json().message, message, `POST ${JSON.stringify(payload).slice(0, 60)}`);
  }
  // JSON cannot spell NaN or Infinity; a number past float64's range parses as Infinity.
  const infinite = await app.inject({
    method: 'POST',
    url: '/v1/collections/shapes/search',
    headers: { 'content-type': 'application/json' },
    payload: `{"direction": [1e999${',0'.repeat(C - 1)}]}`,
  });
  t.equal(infinite.statusCode, 400, infinite.body);
  t.match(infinite.json().message, /direction\[0\] must be a number/);
});

t.test(
  'heatmap: computed once, then served from the cache; a valid PNG with the map laid over',
  async (t) => {
    const reader = new CollectionReader(app.collections.store, await app.collections.get('shapes'));
    const imageId = 1;
    // The neuron with the largest maximum over this image: a map well above zero.
    const maxima = await reader.row(FILES.maxima, imageId);
    let neuron = 0;
    for (let c = 1; c < C; c++) if (maxima[c] > maxima[neuron]) neuron = c;
    const url = `/v1/collections/shapes/images/${imageId}/heatmap?neuron=${neuron}`;
    const first = await app.inject({ url });
    t.equal(first.statusCode, 200, url);
    t.equal(first.headers['x-heatmap-cache'], 'miss');
    const second = await app.inject({ url });
    t.equal(second.headers['x-heatmap-cache'], 'hit');
    t.same(second.rawPayload, first.rawPayload, 'the cached PNG is the computed one');
    t.equal(second.headers['x-neuron-max'], first.headers['x-neuron-max']);
    t.ok(
      Math.abs(Number(first.headers['x-neuron-max']) - maxima[neuron]) < 1e-6,
      'its maximum is the stored one',
    );

    const { data, info } = await sharp(first.rawPayload).raw().toBuffer({ resolveWithObject: true });
    t.match(info, { width: 64, height: 64, channels: 3 }, 'a 64 × 64 RGB PNG (the model’s crop)');
    const crop = centerCrop(resizeShortestSide(await decodeImage(images[imageId].bytes), 64), 64);
    // At the centre of the map's hottest cell the map is near its maximum: alpha near 0.7 of red.
    const [h, w] = app.clip.neuronGrid;
    const argmax = (
      await app.inject({ url: `/v1/neurons/${neuron}/top-images?collection=shapes&by=max&k=7&bins=0` })
    )
      .json()
      .top.find((r: { imageId: number }) => r.imageId === imageId).position as { x: number; y: number };
    const px = Math.floor(((argmax.x + 0.5) * 64) / w);
    const py = Math.floor(((argmax.y + 0.5) * 64) / h);
    const at = 3 * (py * 64 + px);
    t.ok(data[at + 1] <= 0.45 * crop.data[at + 1] + 2, 'green dimmed where the map is hottest');
    t.ok(data[at] >= crop.data[at] - 1, 'red raised where the map is hottest');
    let changed = 0;
    for (let i = 0; i < data.length; i++) if (data[i] !== crop.data[i]) changed++;
    t.ok(changed > 0, 'the map is laid over the crop');

    // The same bytes uploaded: the same PNG, from the same cache entry.
    const uploaded = await app.inject({
      method: 'POST',
      url: `/v1/neurons/${neuron}/heatmap`,
      ...multipart([{ field: 'image', value: images[imageId].bytes, filename: 'again.png' }]),
    });
    t.equal(uploaded.statusCode, 200, 'uploaded');
    t.equal(uploaded.headers['x-heatmap-cache'], 'hit');
    t.same(uploaded.rawPayload, first.rawPayload);
  },
);

t.test('heatmap of an uploaded image; decoding waits for the image routes’ decode bound', async (t) => {
  const decodes = app.encoders.decodes;
  let release = () => undefined as void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const holders = Array.from({ length: decodes.limit }, () => decodes.run(() => gate));
  let settled = false;
  const pending = app
    .inject({
      method: 'POST',
      url: '/v1/neurons/17/heatmap',
      payload: { image: outsider.toString('base64') },
    })
    .then((answer) => {
      settled = true;
      return answer;
    });
  for (let i = 0; i < 10_000 && decodes.queued === 0; i++)
    await new Promise((resolve) => setImmediate(resolve));
  t.equal(decodes.queued, 1, 'the heatmap waits for a decode turn');
  t.notOk(settled, 'and is not answered while every turn is held');
  release();
  await Promise.all(holders);
  const answer = await pending;
  t.equal(answer.statusCode, 200, 'the heatmap once a turn is free');
  t.equal(answer.headers['x-heatmap-cache'], 'miss');
  t.match(await sharp(answer.rawPayload).metadata(), { width: 64, height: 64, format: 'png' });

  const bad: [string, unknown, number, RegExp][] = [
    ['/v1/neurons/512/heatmap', { image: outsider.toString('base64') }, 400, /out of range \(0 to 511\)/],
    ['/v1/neurons/x/heatmap', { image: outsider.toString('base64') }, 400, /neuron id must be an integer/],
    ['/v1/neurons/3/heatmap', {}, 400, /image/],
    [
      '/v1/neurons/3/heatmap',
      { image: Buffer.from('nope').toString('base64') },
      400,
      /not a decodable image/,
    ],
  ];
  for (const [url, payload, status, message] of bad) {
    const answer = await app.inject({ method: 'POST', url, payload: payload as object });
    t.equal(answer.statusCode, status, `${url}: ${answer.body}`);
    t.match(answer.json().message, message);
  }
});

t.test(
  'the 8-bit screen gives the exact top k: against a brute-force cosine and dot product, with clusters and near-ties',
  async (t) => {
    const N = 3000;
    const D = 96;
    // 30 tight clusters (near-ties inside each), a few zero rows (never ranked), some exact duplicates.
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
    const centres = Array.from({ length: 30 }, () => Float32Array.from({ length: D }, random));
    const rows = new Float32Array(N * D);
    for (let i = 0; i < N; i++) {
      if (i % 997 === 0) continue;
      const source = i % 500 === 1 ? Math.max(0, i - 30) : -1;
      for (let j = 0; j < D; j++) {
        rows[i * D + j] = source >= 0 ? rows[source * D + j] : centres[i % 30][j] + 0.02 * random();
      }
    }
    const file = path.join(tmp, 'rows.f32');
    await writeFile(file, new Uint8Array(rows.buffer));
    const norms = Array.from({ length: N }, (_, i) =>
      Math.sqrt(dot(rows.subarray(i * D, (i + 1) * D), rows.subarray(i * D, (i + 1) * D))),
    );
    // The embeddings' way (Float32 rows and codes held), the neuron means' (codes alone held, the
    // candidates read from the file; cosine and dot product), and the JavaScript engine.
    const variants = [
      { engine: 'ort', holdValues: true, measure: 'cosine' },
      { engine: 'ort', holdValues: false, measure: 'cosine' },
      { engine: 'ort', holdValues: false, measure: 'dot' },
      { engine: 'js', holdValues: true, measure: 'cosine' },
    ] as const;
    for (const { engine, holdValues, measure } of variants) {
      const variant = `${engine}${holdValues ? '' : ', codes only'}, ${measure}`;
      const index = new EmbeddingIndex(64 * 2 ** 20, engine);
      for (let q = 0; q < 6; q++) {
        const query = Float32Array.from(
          q % 2 ? centres[q] : Array.from({ length: D }, random),
          (v) => v + 0.01 * random(),
        );
        const k = [1, 12, 50][q % 3];
        const answer = await index.score({
          file,
          key: 'rows',
          keep: true,
          holdValues,
          measure,
          rows: N,
          dim: D,
          query,
          k,
        });
        t.ok(answer.resident, `${variant}: held in memory`);
        if (engine === 'ort')
          t.ok(answer.scored < N / 4, `${variant}: the screen left ${answer.scored} of ${N} rows to score`);
        else t.equal(answer.scored, N);
        const queryNorm = Math.sqrt(dot(query, query));
        // Scores on a cosine's scale (dot products divided by the largest row norm times |q|).
        const unit = measure === 'cosine' ? 1 : Math.max(...norms) * queryNorm;
        const cosines = Array.from({ length: N }, (_, i) => {
          const product = dot(rows.subarray(i * D, (i + 1) * D), query);
          if (measure === 'dot') return product;
          return norms[i] > 0 ? product / (norms[i] * queryNorm) : NaN;
        });
        const order = cosines
          .map((_, i) => i)
          .filter((i) => !Number.isNaN(cosines[i]))
          .sort((a, b) => cosines[b] - cosines[a] || a - b)
          .slice(0, k);
        // Ranks as computed here, except where two cosines differ by less than float rounding.
        const got = Array.from(answer.ids);
        t.equal(got.length, k);
        let same = true;
        got.forEach((id, r) => {
          if (id !== order[r] && Math.abs(cosines[id] - cosines[order[r]]) > 1e-6 * unit) same = false;
          if (Math.abs(answer.scores[r] - cosines[id]) > 1e-5 * unit) same = false;
        });
        t.ok(same, `${variant}, query ${q}, k = ${k}: the top k and their scores as a brute force here`);
      }
      await index.close();
    }
  },
);
