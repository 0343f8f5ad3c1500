/**
 * Image collections over HTTP on the embedded toy model: a collection is created, images are
 * uploaded (with categories, a caption, a duplicate and a file that is not an image) and built as a
 * job; the stored spatial means and embeddings equal what POST /v1/embed/image computes for the
 * same bytes; top images follow a sort done here; the distribution's numbers are recomputed here;
 * a new app on the same DATA_DIR sees the collection; an interrupted build resumes at the next
 * start; and bad inputs get 4xx naming what is allowed.
 */
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';
import sharp from 'sharp';
import type { App } from '../src/app.js';
import { DEFAULT_MODEL_DIR } from '../src/config.js';
import { CollectionReader } from '../src/collections/reader.js';
import { quantileBands, quantileExamples, rankDescending, topK } from '../src/collections/stats.js';
import { collectionIdOf, FILES } from '../src/collections/store.js';
import { buildTestApp } from './helpers/app.js';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'collections-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));

/** Builds the app with variables set only while its plugins read them. */
async function appWith(dataDir: string, env: Record<string, string> = {}): Promise<App> {
  // Blocks of 2 rows: the column-major copies (columns.ts) are read for all but a last odd row.
  const all = { WORD_INDEX_AUTOBUILD: 'false', COLLECTION_COLUMN_BLOCK: '2', ...env };
  const saved = Object.fromEntries(Object.keys(all).map((name) => [name, process.env[name]]));
  Object.assign(process.env, all);
  try {
    return await buildTestApp({ modelDir: DEFAULT_MODEL_DIR, dataDir });
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

interface Part {
  field: string;
  value: string | Buffer;
  filename?: string;
}

function multipart(parts: Part[]): { payload: Buffer; headers: Record<string, string> } {
  const boundary = 'collections-test-boundary';
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const file = part.filename === undefined ? '' : `; filename="${part.filename}"`;
    const type = part.filename === undefined ? '' : '\r\ncontent-type: application/octet-stream';
    chunks.push(
      Buffer.from(
        `--${boundary}\r\ncontent-disposition: form-data; name="${part.field}"${file}${type}\r\n\r\n`,
      ),
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

/** A picture: a coloured background with a shape, of a given size. */
async function picture(background: string, shape: string, width: number, height: number): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <rect width="100%" height="100%" fill="${background}"/>
    <circle cx="${width / 2}" cy="${height / 2}" r="${Math.min(width, height) / 3}" fill="${shape}"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

const images = [
  { name: 'red-on-blue.png', category: 'circle', bytes: await picture('#2040c0', '#e02020', 80, 64) },
  { name: 'yellow-on-green.png', category: 'circle', bytes: await picture('#20a040', '#f0e020', 64, 64) },
  { name: 'white-on-black.png', category: 'mono', bytes: await picture('#000000', '#ffffff', 64, 96) },
  { name: 'black-on-white.png', category: 'mono', bytes: await picture('#ffffff', '#000000', 100, 70) },
  { name: 'purple.png', category: null, bytes: await picture('#8020a0', '#8020a0', 64, 64) },
  { name: 'orange-on-grey.png', category: 'circle', bytes: await picture('#808080', '#ff8000', 70, 70) },
];

async function embedNeurons(app: App, bytes: Buffer): Promise<{ neurons: number[]; embedding: number[] }> {
  const answer = await app.inject({
    method: 'POST',
    url: '/v1/embed/image?neurons=true',
    ...multipart([{ field: 'image', value: bytes, filename: 'x.png' }]),
  });
  if (answer.statusCode !== 200) throw new Error(answer.body);
  return answer.json();
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

const dataDir = path.join(tmp, 'data');
let app = await appWith(dataDir, { COLLECTION_BATCH: '4' });
t.teardown(() => app.close());

t.test('create, upload, build, and the stored activations equal the image route', async (t) => {
  const created = await app.inject({
    method: 'POST',
    url: '/v1/collections',
    payload: { name: 'Test Shapes' },
  });
  t.equal(created.statusCode, 201, created.body);
  t.match(created.json(), { id: 'test-shapes', name: 'Test Shapes', images: 0, complete: true });

  const again = await app.inject({
    method: 'POST',
    url: '/v1/collections',
    payload: { name: 'test shapes' },
  });
  t.equal(again.statusCode, 409);
  t.match(again.json().message, /"test-shapes" exists/);

  const parts: Part[] = [];
  for (const image of images) {
    parts.push({ field: 'category', value: image.category ?? '' });
    if (image.name === 'purple.png') parts.push({ field: 'caption', value: 'a purple square' });
    parts.push({ field: 'image', value: image.bytes, filename: image.name });
  }
  parts.push({ field: 'image', value: images[0].bytes, filename: 'copy-of-red.png' });
  parts.push({ field: 'image', value: Buffer.from('not an image at all'), filename: 'notes.txt' });
  const upload = await app.inject({
    method: 'POST',
    url: '/v1/collections/test-shapes/images',
    ...multipart(parts),
  });
  t.equal(upload.statusCode, 202, upload.body);
  const { jobId, accepted } = upload.json();
  t.equal(accepted, 8);
  t.type(jobId, 'string');
  await app.collections.settled('test-shapes');

  const view = (await app.inject({ method: 'GET', url: '/v1/collections/test-shapes' })).json();
  t.match(view, {
    images: 6,
    pending: 0,
    complete: true,
    categories: [
      { name: 'circle', count: 3 },
      { name: 'mono', count: 2 },
    ],
    build: { jobId, state: 'completed', done: 8, total: 8 },
  });
  t.same(view.build.duplicates, [{ name: 'copy-of-red.png', imageId: 0 }]);
  t.equal(view.build.skipped.length, 1);
  t.match(view.build.skipped[0], { name: 'notes.txt', reason: /not a decodable image/ });

  const list = (await app.inject({ method: 'GET', url: '/v1/collections' })).json();
  t.same(
    list.collections.map((c: { id: string }) => c.id),
    ['test-shapes'],
  );

  const manifest = await app.collections.get('test-shapes');
  const reader = new CollectionReader(app.collections.store, manifest);
  for (const [i, image] of images.entries()) {
    const expected = await embedNeurons(app, image.bytes);
    const means = await reader.row(FILES.means, i);
    const embedding = await reader.row(FILES.embeddings, i);
    t.ok(
      maxAbsDiff(means, expected.neurons) <= 1e-6,
      `${image.name}: spatial means as /v1/embed/image (${maxAbsDiff(means, expected.neurons)})`,
    );
    t.ok(maxAbsDiff(embedding, expected.embedding) <= 1e-5, `${image.name}: embedding as /v1/embed/image`);
    const maxima = await reader.row(FILES.maxima, i);
    t.ok(
      maxima.every((m, c) => m >= means[c] - 1e-6),
      `${image.name}: every maximum ≥ its mean`,
    );
  }
  t.equal(manifest.columnBlocks, 3, 'three column-major blocks of 2 rows');
  for (const neuron of [0, 100, 511]) {
    const column = await reader.column(FILES.means, neuron);
    const maxColumn = await reader.column(FILES.maxima, neuron);
    for (let i = 0; i < images.length; i++) {
      t.equal(column[i], (await reader.row(FILES.means, i))[neuron], `means column ${neuron}, image ${i}`);
      t.equal(
        maxColumn[i],
        (await reader.row(FILES.maxima, i))[neuron],
        `maxima column ${neuron}, image ${i}`,
      );
    }
  }
});

t.test('image metadata and thumbnail', async (t) => {
  const meta = await app.inject({ method: 'GET', url: '/v1/collections/test-shapes/images/4' });
  t.equal(meta.statusCode, 200);
  t.match(meta.json(), {
    id: 4,
    name: 'purple.png',
    category: null,
    caption: 'a purple square',
    width: 64,
    height: 64,
    bytes: images[4].bytes.length,
    thumbnailUrl: '/v1/collections/test-shapes/images/4/thumbnail',
  });
  const first = (await app.inject({ method: 'GET', url: '/v1/collections/test-shapes/images/0' })).json();
  t.match(first, { name: 'red-on-blue.png', category: 'circle', caption: null, width: 80, height: 64 });
  const thumb = await app.inject({ method: 'GET', url: '/v1/collections/test-shapes/images/3/thumbnail' });
  t.equal(thumb.statusCode, 200);
  t.equal(thumb.headers['content-type'], 'image/png');
  const info = await sharp(thumb.rawPayload).metadata();
  t.equal(info.width, 64);
  t.equal(info.height, 45, 'aspect kept: 100×70 → 64×45');
  for (const url of [
    '/v1/collections/test-shapes/images/6',
    '/v1/collections/test-shapes/images/99/thumbnail',
  ]) {
    const missing = await app.inject({ method: 'GET', url });
    t.equal(missing.statusCode, 404, url);
    t.match(missing.json().message, /not found in collection "test-shapes" \(ids 0 to 5/);
  }
});

t.test('top images and distribution against the image route', async (t) => {
  const expected = await Promise.all(images.map((image) => embedNeurons(app, image.bytes)));
  for (const neuron of [0, 7, 300, 511]) {
    const values = expected.map((e) => e.neurons[neuron]);
    const order = values.map((_, i) => i).sort((a, b) => values[b] - values[a] || a - b);
    const answer = await app.inject({
      method: 'GET',
      url: `/v1/neurons/${neuron}/top-images?collection=test-shapes&k=4&bins=3&perBin=1`,
    });
    t.equal(answer.statusCode, 200, answer.body);
    const body = answer.json();
    t.same(
      body.top.map((image: { imageId: number }) => image.imageId),
      order.slice(0, 4),
      `neuron ${neuron}: top 4 by mean as sorted here`,
    );
    t.match(body, { neuron, collection: 'test-shapes', by: 'mean', images: 6, complete: true, grid: [2, 2] });
    t.equal(body.quantiles.length, 3);
    // Bands of two images each (6 / 3): the top band's example is the 2nd ranked ((0 + 0.5) · 2 → 1).
    t.same(
      body.quantiles.map((band: { images: { imageId: number }[] }) => band.images[0].imageId),
      [order[1], order[3], order[5]],
    );
    t.match(body.top[0], { thumbnailUrl: `/v1/collections/test-shapes/images/${order[0]}/thumbnail` });

    const byMax = (
      await app.inject({
        method: 'GET',
        url: `/v1/neurons/${neuron}/top-images?collection=test-shapes&k=6&by=max&bins=0`,
      })
    ).json();
    const maxValues = byMax.top.map((image: { value: number }) => image.value);
    t.same(
      maxValues,
      [...maxValues].sort((a, b) => b - a),
      'by max: descending',
    );
    for (const image of byMax.top) {
      t.ok(image.value >= values[image.imageId] - 1e-6, 'a maximum is at least the mean');
      t.ok(image.position.x >= 0 && image.position.x < 2 && image.position.y >= 0 && image.position.y < 2);
    }

    const distribution = await app.inject({
      method: 'GET',
      url: `/v1/neurons/${neuron}/distribution?collection=test-shapes&bins=4&buckets=2`,
    });
    t.equal(distribution.statusCode, 200, distribution.body);
    const d = distribution.json();
    const fround = values.map((v) => Math.fround(v));
    t.equal(d.count, 6);
    t.ok(Math.abs(d.mean - fround.reduce((a, b) => a + b, 0) / 6) < 1e-6, 'mean');
    t.equal(d.min, Math.min(...fround));
    t.equal(d.max, Math.max(...fround));
    t.equal(d.firing, fround.filter((v) => v > 0).length / 6, 'share firing above 0');
    t.equal(
      d.histogram.counts.reduce((a: number, b: number) => a + b, 0),
      6,
    );
    t.equal(d.histogram.edges.length, 5);
    const circle = [0, 1, 5].map((i) => fround[i]);
    const circleMean = d.categories.find((c: { category: string }) => c.category === 'circle');
    t.ok(Math.abs(circleMean.mean - circle.reduce((a, b) => a + b, 0) / 3) < 1e-6, 'category mean');
    t.equal(circleMean.count, 3);
    t.ok(d.categories.some((c: { category: string }) => c.category === '(none)'));
    t.equal(
      d.buckets.reduce((sum: number, b: { count: number }) => sum + b.count, 0),
      6,
    );
    for (const bucket of d.buckets) {
      if (bucket.count === 0) continue;
      const total = bucket.shares.reduce((sum: number, s: { share: number }) => sum + s.share, 0);
      t.ok(Math.abs(total - 1) < 1e-9, 'category shares in a bucket sum to 1');
    }
    t.same(
      d.quantiles.map((q: { q: number }) => q.q),
      [0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1],
    );
    t.equal(d.quantiles[0].value, d.min);
    t.equal(d.quantiles[10].value, d.max);
  }
});

t.test('search by text and the neurons of a category, against the image and text routes', async (t) => {
  const expected = await Promise.all(images.map((image) => embedNeurons(app, image.bytes)));
  const norm = (v: number[]) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
  for (const text of ['a red circle', 'a black and white picture']) {
    const answer = await app.inject({
      method: 'GET',
      url: `/v1/collections/test-shapes/search?text=${encodeURIComponent(text)}&k=6`,
    });
    t.equal(answer.statusCode, 200, answer.body);
    const body = answer.json();
    const textEmbedding = (
      await app.inject({ method: 'POST', url: '/v1/embed/text', payload: { texts: [text] } })
    ).json().embeddings[0] as number[];
    const cosines = expected.map(
      ({ embedding }) =>
        embedding.reduce((sum, e, j) => sum + e * textEmbedding[j], 0) /
        (norm(embedding) * norm(textEmbedding)),
    );
    const order = cosines.map((_, i) => i).sort((a, b) => cosines[b] - cosines[a] || a - b);
    t.same(
      body.results.map((r: { imageId: number }) => r.imageId),
      order,
      `"${text}": ranked as the cosines computed here`,
    );
    for (const result of body.results) {
      t.ok(Math.abs(result.score - cosines[result.imageId]) < 1e-5, 'score is the cosine');
    }
    t.match(body, { collection: 'test-shapes', text, images: 6, complete: true });
  }

  const answer = await app.inject({
    method: 'GET',
    url: '/v1/collections/test-shapes/categories/circle/neurons?k=5',
  });
  t.equal(answer.statusCode, 200, answer.body);
  const body = answer.json();
  t.match(body, { collection: 'test-shapes', category: 'circle', inCategory: 3, rest: 3, complete: true });
  const inside = [0, 1, 5];
  const outside = [2, 3, 4];
  const stats = Array.from({ length: 512 }, (_, c) => {
    const side = (ids: number[]) => {
      const values = ids.map((i) => expected[i].neurons[c]);
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const squares = values.reduce((a, b) => a + b * b, 0);
      return { mean, variance: Math.max(0, (squares - values.length * mean * mean) / (values.length - 1)) };
    };
    const a = side(inside);
    const b = side(outside);
    const pooled = Math.sqrt((2 * a.variance + 2 * b.variance) / 4);
    return {
      neuron: c,
      d: pooled > 0 ? (a.mean - b.mean) / pooled : -Infinity,
      meanIn: a.mean,
      meanRest: b.mean,
    };
  });
  const best = [...stats].sort((a, b) => b.d - a.d || a.neuron - b.neuron).slice(0, 5);
  // The AUC by counting pairs here: an image of the category above one of the rest (ties ½).
  const pairAuc = (c: number) => {
    let wins = 0;
    for (const a of inside) {
      for (const b of outside) {
        const [x, y] = [expected[a].neurons[c], expected[b].neurons[c]];
        wins += x > y ? 1 : x === y ? 0.5 : 0;
      }
    }
    return wins / (inside.length * outside.length);
  };
  t.same(
    body.neurons.map((n: { neuron: number }) => n.neuron),
    best.map((n) => n.neuron),
    'the top 5 by d, as computed here',
  );
  body.neurons.forEach((n: { d: number; meanIn: number; meanRest: number; auc: number }, i: number) => {
    t.ok(Math.abs(n.d - best[i].d) < 1e-6 * Math.max(1, Math.abs(best[i].d)), 'd');
    t.equal(n.auc, pairAuc(best[i].neuron), `neuron ${best[i].neuron}: AUC as counted here`);
    t.ok(Math.abs(n.meanIn - best[i].meanIn) < 1e-6, 'mean in the category');
    t.ok(Math.abs(n.meanRest - best[i].meanRest) < 1e-6, 'mean of the rest');
  });

  // Every neuron's AUC (500 of 512, most of them neither 0 nor 1), as counted here.
  const all = await app.inject({
    method: 'GET',
    url: '/v1/collections/test-shapes/categories/circle/neurons?k=500',
  });
  const aucs: { neuron: number; auc: number }[] = all.json().neurons;
  const off = aucs.filter(({ neuron, auc }) => Math.abs(auc - pairAuc(neuron)) > 1e-9);
  t.same(off, [], 'the AUC of each of 500 neurons as counted here');
  t.ok(aucs.filter(({ auc }) => auc > 0 && auc < 1).length > 100, 'most AUCs lie strictly between 0 and 1');

  const unknown = await app.inject({
    method: 'GET',
    url: '/v1/collections/test-shapes/categories/square/neurons',
  });
  t.equal(unknown.statusCode, 404);
  t.match(unknown.json().message, /category "square" not found.*"circle", "mono"/);
  const noText = await app.inject({ method: 'GET', url: '/v1/collections/test-shapes/search' });
  t.equal(noText.statusCode, 400);
  t.match(noText.json().message, /text/);
  const badK = await app.inject({ method: 'GET', url: '/v1/collections/test-shapes/search?text=a&k=0' });
  t.equal(badK.statusCode, 400);
  t.match(badK.json().message, /k must be an integer from 1 to 200/);
  const missing = await app.inject({ method: 'GET', url: '/v1/collections/nope/search?text=a' });
  t.equal(missing.statusCode, 404);
});

t.test('cancelling a build drops the uploads it had not indexed', async (t) => {
  await app.close();
  app = await appWith(dataDir, { COLLECTION_BATCH: '1' });
  await app.inject({ method: 'POST', url: '/v1/collections', payload: { name: 'cancelled' } });
  const parts: Part[] = [];
  for (let i = 0; i < 40; i++) {
    const grey = (i * 6).toString(16).padStart(2, '0');
    parts.push({
      field: 'image',
      value: await picture(`#${grey}${grey}${grey}`, '#ff0000', 64, 64),
      filename: `${i}.png`,
    });
  }
  const upload = await app.inject({
    method: 'POST',
    url: '/v1/collections/cancelled/images',
    ...multipart(parts),
  });
  t.equal(upload.statusCode, 202);
  const building = (await app.inject({ method: 'GET', url: '/v1/collections/cancelled' })).json();
  t.match(building, { complete: false, build: { state: 'running', total: 40 } }, 'reported while it builds');
  t.equal(building.images + building.pending, 40, 'indexed and pending images add up');
  t.equal(building.build.done, building.images, 'done counts the indexed images');
  const stranger = await app.inject({
    method: 'DELETE',
    url: '/v1/collections/cancelled/build',
    remoteAddress: '10.9.8.7',
  });
  t.equal(stranger.statusCode, 403);
  const cancel = await app.inject({ method: 'DELETE', url: '/v1/collections/cancelled/build' });
  t.equal(cancel.statusCode, 200, cancel.body);
  t.match(cancel.json(), { jobId: upload.json().jobId, state: 'cancelled' });
  const view = (await app.inject({ method: 'GET', url: '/v1/collections/cancelled' })).json();
  t.match(view, { pending: 0, complete: true, build: { state: 'cancelled' } });
  t.ok(view.images < 40, `indexed before the cancel: ${view.images} of 40`);
  t.equal(view.build.done, view.images, 'done counts what was indexed');
  t.equal(view.build.total, 40, 'the total was known before the first batch');
  const again = await app.inject({ method: 'DELETE', url: '/v1/collections/cancelled/build' });
  t.equal(again.statusCode, 200, 'cancelling a finished build answers its state');
  t.match(again.json(), { state: 'cancelled' });
});

t.test('bad inputs', async (t) => {
  const cases: [string, string, number, RegExp][] = [
    ['GET', '/v1/collections/nope', 404, /collection "nope" not found/],
    ['GET', '/v1/collections/Bad_Id', 400, /collection id must be/],
    ['GET', '/v1/neurons/1/top-images?collection=nope', 404, /collection "nope" not found/],
    ['GET', '/v1/neurons/1/top-images', 400, /collection/],
    ['GET', '/v1/neurons/512/top-images?collection=test-shapes', 400, /out of range \(0 to 511\)/],
    ['GET', '/v1/neurons/1/top-images?collection=test-shapes&by=median', 400, /mean|max/],
    ['GET', '/v1/neurons/1/top-images?collection=test-shapes&k=0', 400, /k/],
    ['GET', '/v1/neurons/1/top-images?collection=test-shapes&k=201', 400, /k/],
    ['GET', '/v1/neurons/x/distribution?collection=test-shapes', 400, /neuron|id/i],
    ['GET', '/v1/neurons/1/distribution?collection=test-shapes&bins=0', 400, /bins/],
    ['GET', '/v1/neurons/1/distribution?collection=NOPE!', 400, /collection must be/],
    ['GET', '/v1/collections/test-shapes/images/-1', 400, /image id must be/],
  ];
  for (const [method, url, status, message] of cases) {
    const answer = await app.inject({ method: method as 'GET', url });
    t.equal(answer.statusCode, status, `${url}: ${answer.body}`);
    t.match(answer.json().message, message, url);
  }
  const badName = await app.inject({ method: 'POST', url: '/v1/collections', payload: { name: '!!!' } });
  t.equal(badName.statusCode, 400);
  const extra = await app.inject({ method: 'POST', url: '/v1/collections', payload: { name: 'a', x: 1 } });
  t.equal(extra.statusCode, 400);

  const json = await app.inject({
    method: 'POST',
    url: '/v1/collections/test-shapes/images',
    payload: { image: ['x'] },
  });
  t.equal(json.statusCode, 415);
  t.match(json.json().message, /multipart.*"image"/);
  const noBoundary = await app.inject({
    method: 'POST',
    url: '/v1/collections/test-shapes/images',
    headers: { 'content-type': 'multipart/form-data' },
    payload: 'x',
  });
  t.equal(noBoundary.statusCode, 400);
  t.match(noBoundary.json().message, /no boundary/);
  const cut = await app.inject({
    method: 'POST',
    url: '/v1/collections/test-shapes/images',
    headers: { 'content-type': 'multipart/form-data; boundary=XyZ' },
    payload: '--XyZ\r\ncontent-disposition: form-data; name="image"; filename="a.png"\r\n\r\n\x89PNG',
  });
  t.equal(cut.statusCode, 400, 'a body that breaks off inside a part');
  t.match(cut.json().message, /could not be read.*"image"/);
  const wrongField = await app.inject({
    method: 'POST',
    url: '/v1/collections/test-shapes/images',
    ...multipart([{ field: 'file', value: images[0].bytes, filename: 'a.png' }]),
  });
  t.equal(wrongField.statusCode, 400);
  t.match(wrongField.json().message, /"image"/);
  const noFiles = await app.inject({
    method: 'POST',
    url: '/v1/collections/test-shapes/images',
    ...multipart([{ field: 'category', value: 'x' }]),
  });
  t.equal(noFiles.statusCode, 400);
  t.match(noFiles.json().message, /image/);
  const unknown = await app.inject({
    method: 'POST',
    url: '/v1/collections/nope/images',
    ...multipart([{ field: 'image', value: images[0].bytes, filename: 'a.png' }]),
  });
  t.equal(unknown.statusCode, 404);

  const empty = await app.inject({ method: 'POST', url: '/v1/collections', payload: { name: 'Empty one' } });
  t.equal(empty.statusCode, 201);
  const nothing = await app.inject({ method: 'GET', url: '/v1/neurons/1/top-images?collection=empty-one' });
  t.equal(nothing.statusCode, 409);
  t.match(nothing.json().message, /no indexed images yet/);
  t.equal(nothing.headers['retry-after'], undefined, 'nothing is on its way: no Retry-After');

  // Images staged for a first build that has not indexed them yet (the probe in the first seconds
  // after a start): a 503 to retry, not a 409 that says to add images.
  await app.collections.create('Staged one', 'test');
  await app.collections.store.appendPending('staged-one', [
    { name: 'a.png', category: null, caption: null, sha256: '0'.repeat(64), bytes: 10 },
  ]);
  for (const url of [
    '/v1/neurons/1/top-images?collection=staged-one',
    '/v1/neurons/1/evidence?collection=staged-one',
  ]) {
    const staged = await app.inject({ method: 'GET', url });
    t.equal(staged.statusCode, 503, url);
    t.equal(staged.headers['retry-after'], '2', url);
    t.match(staged.json().message, /no indexed images yet: images are staged for its build; retry shortly/);
  }
  await app.collections.store.remove('staged-one');

  // A collection of the service's own (the probe), just created, while the service writes its
  // originals and before anything is staged: being installed, also a 503.
  await app.collections.create('Installing one', 'service', true);
  const installing = await app.inject({
    method: 'GET',
    url: '/v1/neurons/1/top-images?collection=installing-one',
  });
  t.equal(installing.statusCode, 503);
  t.equal(installing.headers['retry-after'], '2');
  t.match(installing.json().message, /no indexed images yet: the service is installing its images/);
  await app.collections.store.remove('installing-one');
});

t.test('a new app on the same DATA_DIR sees the collection', async (t) => {
  const before = (
    await app.inject({ method: 'GET', url: '/v1/neurons/5/top-images?collection=test-shapes&k=6' })
  ).json();
  await app.close();
  app = await appWith(dataDir);
  const view = (await app.inject({ method: 'GET', url: '/v1/collections/test-shapes' })).json();
  t.match(view, { images: 6, complete: true, build: { state: 'completed' } });
  const after = (
    await app.inject({ method: 'GET', url: '/v1/neurons/5/top-images?collection=test-shapes&k=6' })
  ).json();
  t.same(after, before);
});

t.test('an interrupted build resumes at the next start, where it stopped', async (t) => {
  await app.inject({ method: 'POST', url: '/v1/collections', payload: { name: 'resumed' } });
  const store = app.collections.store;
  // As a process that died after staging uploads and indexing none: pending entries, a build
  // recorded as running, and garbage past the committed rows (a batch written, not yet counted).
  for (const image of images.slice(0, 5)) {
    const { createHash } = await import('node:crypto');
    const sha256 = createHash('sha256').update(image.bytes).digest('hex');
    await store.putImage('resumed', sha256, image.bytes);
    await store.appendPending('resumed', [
      { name: image.name, category: image.category, caption: null, sha256, bytes: image.bytes.length },
    ]);
  }
  const manifest = await app.collections.get('resumed');
  await store.writeManifest({
    ...manifest,
    build: { ...manifest.build, jobId: 'build-before-restart', state: 'running', total: 5 },
  });
  await writeFile(store.file('resumed', FILES.means), Buffer.alloc(512 * 4 * 3, 0x7f));
  await app.close();

  app = await appWith(dataDir, { COLLECTION_BATCH: '2' });
  await app.collections.settled('resumed');
  const view = (await app.inject({ method: 'GET', url: '/v1/collections/resumed' })).json();
  t.match(view, {
    images: 5,
    complete: true,
    build: { jobId: 'build-before-restart', state: 'completed', done: 5 },
  });
  const resumed = await app.collections.get('resumed');
  t.equal(resumed.columnBlocks, 2, 'two column-major blocks, and one row after them');
  const reader = new CollectionReader(store, resumed);
  const column = await reader.column(FILES.means, 9);
  const original = new CollectionReader(store, await app.collections.get('test-shapes'));
  for (let i = 0; i < 5; i++) {
    t.ok(
      maxAbsDiff(await reader.row(FILES.means, i), await original.row(FILES.means, i)) <= 1e-6,
      `image ${i}: the rows past the count were rewritten`,
    );
    t.equal(column[i], (await reader.row(FILES.means, i))[9], `image ${i}: column read as the row`);
  }
});

t.test('limits, and deleting (owner or admin)', async (t) => {
  await app.close();
  app = await appWith(dataDir, { COLLECTION_UPLOAD_FILES: '2', COLLECTION_MAX_IMAGES: '3' });
  await app.inject({ method: 'POST', url: '/v1/collections', payload: { name: 'small' } });
  const file = (i: number): Part => ({ field: 'image', value: images[i].bytes, filename: images[i].name });
  const three = await app.inject({
    method: 'POST',
    url: '/v1/collections/small/images',
    ...multipart([file(0), file(1), file(2)]),
  });
  t.equal(three.statusCode, 413);
  t.match(three.json().message, /COLLECTION_UPLOAD_FILES/);
  const two = await app.inject({
    method: 'POST',
    url: '/v1/collections/small/images',
    ...multipart([file(0), file(1)]),
  });
  t.equal(two.statusCode, 202);
  const more = await app.inject({
    method: 'POST',
    url: '/v1/collections/small/images',
    ...multipart([file(2), file(3)]),
  });
  t.equal(more.statusCode, 413);
  t.match(more.json().message, /would hold 4 images.*limit is 3 \(COLLECTION_MAX_IMAGES\)/);
  await app.collections.settled('small');

  const stranger = await app.inject({
    method: 'DELETE',
    url: '/v1/collections/small',
    remoteAddress: '10.9.8.7',
  });
  t.equal(stranger.statusCode, 403);
  t.match(stranger.json().message, /only its owner/);
  const owner = await app.inject({ method: 'DELETE', url: '/v1/collections/small' });
  t.equal(owner.statusCode, 204);
  t.equal((await app.inject({ method: 'GET', url: '/v1/collections/small' })).statusCode, 404);
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/collections/small' })).statusCode, 404);
});

/** A ustar archive of regular files (type '0'), directories ('5') and links ('2'). */
function tar(entries: { name: string; bytes?: Buffer; type?: string; link?: string }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const header = Buffer.alloc(512);
    const bytes = entry.bytes ?? Buffer.alloc(0);
    header.write(entry.name, 0, 100, 'utf8');
    header.write('0000644\0', 100);
    header.write('0000000\0', 108);
    header.write('0000000\0', 116);
    header.write(bytes.length.toString(8).padStart(11, '0') + '\0', 124);
    header.write('00000000000\0', 136);
    header.write(entry.type ?? '0', 156);
    if (entry.link) header.write(entry.link, 157, 100, 'utf8');
    header.write('ustar\0', 257);
    header.write('00', 263);
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(header, bytes, Buffer.alloc((512 - (bytes.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** A zip of deflated files; `mode` sets the Unix mode (0o120777: a symbolic link). */
function zip(entries: { name: string; bytes: Buffer; mode?: number }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name);
    const data = deflateRawSync(entry.bytes);
    const crc = crc32(entry.bytes);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(entry.bytes.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(0x0314, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(entry.bytes.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((entry.mode ?? 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += 30 + name.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

t.test('archives: .tar, .tar.gz and .zip, folders as categories; refused ones', async (t) => {
  await app.close();
  app = await appWith(dataDir, { COLLECTION_ARCHIVE_BYTES: '400000' });
  const upload = (id: string, archive: Buffer, name: string, parts: Part[] = []) =>
    app.inject({
      method: 'POST',
      url: `/v1/collections/${id}/images`,
      ...multipart([...parts, { field: 'archive', value: archive, filename: name }]),
    });
  const files = [
    { name: 'pets/cats/', type: '5' },
    { name: 'pets/cats/a.png', bytes: images[0].bytes },
    { name: 'pets/cats/b.png', bytes: images[1].bytes },
    { name: 'pets/dogs/c.png', bytes: images[2].bytes },
    { name: 'top.png', bytes: images[3].bytes },
    { name: 'README.txt', bytes: Buffer.from('not an image') },
  ];
  const forms: [string, Buffer][] = [
    ['pets.tar', tar(files)],
    ['pets.tar.gz', gzipSync(tar(files))],
    ['pets.zip', zip(files.filter((f) => f.bytes !== undefined) as { name: string; bytes: Buffer }[])],
  ];
  for (const [name, archive] of forms) {
    const id = collectionIdOf(name);
    await app.inject({ method: 'POST', url: '/v1/collections', payload: { name } });
    const answer = await upload(id, archive, name, [{ field: 'category', value: 'misc' }]);
    t.equal(answer.statusCode, 202, `${name}: ${answer.body}`);
    t.equal(answer.json().accepted, 5, `${name}: five files (the folder passed over)`);
    await app.collections.settled(id);
    const view = (await app.inject({ method: 'GET', url: `/v1/collections/${id}` })).json();
    t.match(view, {
      images: 4,
      complete: true,
      categories: [
        { name: 'cats', count: 2 },
        { name: 'dogs', count: 1 },
        { name: 'misc', count: 1 },
      ],
      build: { state: 'completed', skipped: [{ name: 'README.txt', reason: /not a decodable image/ }] },
    });
    const meta = (await app.inject({ method: 'GET', url: `/v1/collections/${id}/images/2` })).json();
    t.match(meta, { name: 'pets/dogs/c.png', category: 'dogs', sha256: meta.sha256 });
  }

  await app.inject({ method: 'POST', url: '/v1/collections', payload: { name: 'refused' } });
  const png = images[0].bytes;
  const refusals: [string, Buffer, number, RegExp][] = [
    ['escape.tar', tar([{ name: '../evil.png', bytes: png }]), 400, /leaves the archive's folder/],
    ['inner-escape.tar', tar([{ name: 'a/../../evil.png', bytes: png }]), 400, /leaves the archive's folder/],
    ['absolute.tar', tar([{ name: '/etc/evil.png', bytes: png }]), 400, /absolute path/],
    ['symlink.tar', tar([{ name: 'link.png', type: '2', link: '/etc/passwd' }]), 400, /is a link/],
    ['hardlink.tar', tar([{ name: 'link.png', type: '1', link: 'a.png' }]), 400, /is a link/],
    ['fifo.tar', tar([{ name: 'pipe', type: '6' }]), 400, /not a regular file/],
    ['escape.zip', zip([{ name: '../evil.png', bytes: png }]), 400, /leaves the archive's folder/],
    [
      'symlink.zip',
      zip([{ name: 'link.png', bytes: Buffer.from('/etc/passwd'), mode: 0o120777 }]),
      400,
      /is a link/,
    ],
    [
      'bomb.tar.gz',
      gzipSync(tar([{ name: 'zeros.png', bytes: Buffer.alloc(2_000_000) }])),
      413,
      /expands past 400000 bytes \(COLLECTION_ARCHIVE_BYTES\)/,
    ],
    [
      'bomb.zip',
      zip([{ name: 'zeros.png', bytes: Buffer.alloc(2_000_000) }]),
      413,
      /COLLECTION_ARCHIVE_BYTES/,
    ],
    ['plain.txt', Buffer.from('just text, no archive'), 400, /not a \.tar, \.tar\.gz or \.zip/],
    ['not-tar.gz', gzipSync(Buffer.from('text')), 400, /not a tar archive/],
  ];
  for (const [name, archive, status, message] of refusals) {
    const answer = await upload('refused', archive, name);
    t.equal(answer.statusCode, status, `${name}: ${answer.body}`);
    t.match(answer.json().message, message, name);
  }
  const two = await app.inject({
    method: 'POST',
    url: '/v1/collections/refused/images',
    ...multipart([
      { field: 'archive', value: tar(files), filename: 'a.tar' },
      { field: 'archive', value: tar(files), filename: 'b.tar' },
    ]),
  });
  t.equal(two.statusCode, 400);
  t.match(two.json().message, /at most one file in the field "archive"/);
  const view = (await app.inject({ method: 'GET', url: '/v1/collections/refused' })).json();
  t.match(view, { images: 0, pending: 0 }, 'nothing of a refused archive was staged');
});

t.test('a collection deleted while it is read is a 404, not a 500', async (t) => {
  const manifest = await app.collections.get('test-shapes');
  const reader = new CollectionReader(app.collections.store, { ...manifest, id: 'deleted-meanwhile' });
  await t.rejects(reader.column(FILES.means, 0), {
    statusCode: 404,
    message: /"deleted-meanwhile" not found/,
  });
  await t.rejects(reader.meta(0), { statusCode: 404, message: /not found/ });
});

t.test('two replicas on one DATA_DIR: one build, uploads to either join it', async (t) => {
  // Batches of one image: the first replica's build is still running when the second upload comes.
  await app.close();
  app = await appWith(dataDir, { COLLECTION_BATCH: '1' });
  const other = await appWith(dataDir, { COLLECTION_BATCH: '1' });
  t.teardown(() => other.close());
  const seen = (await other.inject({ method: 'GET', url: '/v1/collections/test-shapes' })).json();
  t.match(seen, { images: 6, complete: true }, 'the other replica sees the collection');

  await app.inject({ method: 'POST', url: '/v1/collections', payload: { name: 'shared' } });
  const pictures = await Promise.all(
    Array.from({ length: 32 }, (_, i) =>
      picture(`#${(i * 7).toString(16).padStart(2, '0')}4080`, '#ffffff', 64, 64),
    ),
  );
  const first = await app.inject({
    method: 'POST',
    url: '/v1/collections/shared/images',
    ...multipart(pictures.slice(0, 30).map((value, i) => ({ field: 'image', value, filename: `${i}.png` }))),
  });
  t.equal(first.statusCode, 202);
  const second = await other.inject({
    method: 'POST',
    url: '/v1/collections/shared/images',
    ...multipart(pictures.slice(30).map((value, i) => ({ field: 'image', value, filename: `b${i}.png` }))),
  });
  t.equal(second.statusCode, 202);
  t.equal(second.json().jobId, first.json().jobId, 'the upload to the other replica joins the running build');
  await app.collections.settled('shared');
  const view = (await other.inject({ method: 'GET', url: '/v1/collections/shared' })).json();
  t.match(view, {
    images: 32,
    pending: 0,
    complete: true,
    build: { jobId: first.json().jobId, state: 'completed' },
  });

  // Each replica's own builds (in-process queues, no Redis): their job ids never collide.
  const jobIds: string[] = [];
  for (const [replica, name] of [
    [app, 'solo-a'],
    [other, 'solo-b'],
  ] as const) {
    await replica.inject({ method: 'POST', url: '/v1/collections', payload: { name } });
    const upload = await replica.inject({
      method: 'POST',
      url: `/v1/collections/${name}/images`,
      ...multipart([{ field: 'image', value: pictures[0], filename: '0.png' }]),
    });
    t.equal(upload.statusCode, 202, upload.body);
    jobIds.push(upload.json().jobId);
    await replica.collections.settled(name);
  }
  t.not(jobIds[0], jobIds[1], 'the two replicas gave their builds different job ids');
  for (const id of jobIds) t.match(id, /^build-[0-9a-f-]{36}$/, `${id}: a random id`);
  for (const [replica, own, foreign] of [
    [app, jobIds[0], jobIds[1]],
    [other, jobIds[1], jobIds[0]],
  ] as const) {
    t.equal((await replica.inject({ method: 'GET', url: `/v1/jobs/${own}` })).statusCode, 200);
    const elsewhere = await replica.inject({ method: 'GET', url: `/v1/jobs/${foreign}` });
    t.equal(elsewhere.statusCode, 404, "the other replica's job is not taken for one of this replica's");
  }
});

t.test("a build decodes under the image routes' one bound (IMAGE_DECODE_CONCURRENCY)", async (t) => {
  const { decodes } = app.encoders;
  // Every turn of the bound held here: the build must wait for one before it decodes anything.
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const holders = Array.from({ length: decodes.limit }, () => decodes.run(() => gate));
  await app.inject({ method: 'POST', url: '/v1/collections', payload: { name: 'bounded' } });
  const upload = await app.inject({
    method: 'POST',
    url: '/v1/collections/bounded/images',
    ...multipart(
      images.slice(0, 3).map((image) => ({ field: 'image', value: image.bytes, filename: image.name })),
    ),
  });
  t.equal(upload.statusCode, 202, upload.body);
  const deadline = Date.now() + 30_000;
  while (decodes.queued === 0 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 10));
  t.ok(decodes.queued > 0, `the build's decodes wait for a turn (${decodes.queued} waiting)`);
  t.equal(decodes.inUse, decodes.limit, 'no decode runs beyond the bound');
  const waiting = (await app.inject({ method: 'GET', url: '/v1/collections/bounded' })).json();
  t.match(waiting, { images: 0, complete: false }, 'nothing indexed while no turn is free');
  let most = 0;
  const watch = setInterval(() => (most = Math.max(most, decodes.inUse)), 1);
  open();
  await Promise.all(holders);
  await app.collections.settled('bounded');
  clearInterval(watch);
  t.ok(most <= decodes.limit, `at most ${decodes.limit} decodes at once (${most} seen)`);
  const built = (await app.inject({ method: 'GET', url: '/v1/collections/bounded' })).json();
  t.match(built, { images: 3, complete: true });
});

t.test('quantile bands from the ranks they take equal those of a full ranking', async (t) => {
  let seed = 7;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  for (const n of [1, 2, 7, 100, 1000]) {
    // Few distinct values (many ties), a few NaN.
    const values = Float32Array.from({ length: n }, () =>
      random() < 0.05 ? NaN : Math.round(random() * 8) / 4,
    );
    for (const [bins, perBin] of [
      [1, 1],
      [3, 2],
      [5, 3],
      [20, 20],
    ]) {
      t.same(
        quantileBands(values, bins, perBin),
        quantileExamples(rankDescending(values), bins, perBin),
        `n = ${n}, ${bins} bins of ${perBin}`,
      );
    }
    const ranked = rankDescending(values);
    t.same(topK(values, 5), ranked.slice(0, 5), `n = ${n}: top 5 as the full ranking`);
  }
});

t.test('heatmap: the neuron map over the image, its maximum the stored one', async (t) => {
  const reader = new CollectionReader(app.collections.store, await app.collections.get('test-shapes'));
  for (const [imageId, neuron] of [
    [0, 7],
    [2, 300],
    [3, 511],
  ]) {
    const url = `/v1/collections/test-shapes/images/${imageId}/heatmap?neuron=${neuron}`;
    const answer = await app.inject({ method: 'GET', url });
    t.equal(answer.statusCode, 200, url);
    t.equal(answer.headers['content-type'], 'image/png');
    const info = await sharp(answer.rawPayload).metadata();
    t.match(info, { width: 64, height: 64, format: 'png' }, 'the model’s 64 × 64 crop');
    const stored = (await reader.row(FILES.maxima, imageId))[neuron];
    t.ok(
      Math.abs(Number(answer.headers['x-neuron-max']) - Math.max(0, stored)) <= 1e-6,
      `image ${imageId}, neuron ${neuron}: the map's maximum is the stored spatial maximum`,
    );
    const again = await app.inject({ method: 'GET', url });
    t.same(again.rawPayload, answer.rawPayload, 'deterministic');
  }
  const cases: [string, number, RegExp][] = [
    ['/v1/collections/test-shapes/images/0/heatmap', 400, /neuron/],
    ['/v1/collections/test-shapes/images/0/heatmap?neuron=512', 400, /out of range \(0 to 511\)/],
    ['/v1/collections/test-shapes/images/0/heatmap?neuron=-1', 400, /neuron must be an integer from 0/],
    ['/v1/collections/test-shapes/images/99/heatmap?neuron=1', 404, /image 99 not found/],
    ['/v1/collections/nope/images/0/heatmap?neuron=1', 404, /collection "nope" not found/],
  ];
  for (const [url, status, message] of cases) {
    const answer = await app.inject({ method: 'GET', url });
    t.equal(answer.statusCode, status, `${url}: ${answer.body}`);
    t.match(answer.json().message, message);
  }
});
