/**
 * GET /v1/neurons/{id}/neighbours on the embedded toy model, recomputed from scratch by numpy: by
 * weights from the raw bilinear.f32 (cosine of W's rows), by activations from the collection's raw
 * means.f32 (np.corrcoef of the columns), over a small collection of rendered shapes whose column
 * blocks (8 rows) and row tail both serve the neuron's column and the numerators; the route's
 * answers (computed on the service's thread) equal those computed on the calling thread. The 4xx answers: a neuron out of
 * range, k out of range, an unknown `by`, activations without a collection, an unknown or empty
 * collection, a neuron constant over the images. And the families GET /v1/neurons names.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import type { App } from '../src/app.js';
import { DEFAULT_MODEL_DIR, REPO_ROOT } from '../src/config.js';
import { FILES } from '../src/collections/store.js';
import { NeighbourService } from '../src/evidence/neighbour-service.js';
import { buildTestApp } from './helpers/app.js';

const ID = 'neighbour-shapes';
const K = 6;
const COLOURS = ['#d92020', '#2040d9', '#20a040', '#e0c020', '#a020c0', '#202020', '#f08020'];
const SHAPES = [
  '<circle cx="32" cy="32" r="22"/>',
  '<rect x="12" y="12" width="40" height="40"/>',
  '<polygon points="32,6 60,56 4,56"/>',
  '<rect x="6" y="24" width="52" height="16"/>',
];

const started = Date.now();
const tmp = await mkdtemp(path.join(os.tmpdir(), 'neuron-neighbours-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));
// Column blocks of 8 rows: 28 images are 3 blocks and a tail of 4 rows read from the row-major file.
process.env.COLLECTION_COLUMN_BLOCK = '8';
process.env.WORD_INDEX_AUTOBUILD = 'false';
const app: App = await buildTestApp({
  modelDir: DEFAULT_MODEL_DIR,
  dataDir: path.join(tmp, 'data'),
  maxEventLoopDelayMs: 0,
});
t.teardown(() => app.close());
delete process.env.COLLECTION_COLUMN_BLOCK;
delete process.env.WORD_INDEX_AUTOBUILD;

const uploads = await Promise.all(
  COLOURS.flatMap((colour, i) =>
    SHAPES.map(async (shape, j) => ({
      name: `${i}-${j}.png`,
      bytes: await sharp(
        Buffer.from(
          `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#fff"/><g fill="${colour}">${shape}</g></svg>`,
        ),
      )
        .png()
        .toBuffer(),
      category: `c${i}`,
      caption: null,
    })),
  ),
);
await app.collections.create(ID, 'test');
await app.collections.addImages(ID, uploads);
const appReady = Date.now();
const manifest = await built(ID, uploads.length);

/** The collection once its build has indexed `count` images (settled() can answer before the build's job is seen). */
async function built(id: string, count: number) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    await app.collections.settled(id);
    const manifest = await app.collections.get(id);
    if (manifest.images === count) return manifest;
    if (manifest.build.state === 'failed' || Date.now() > deadline) {
      throw new Error(
        `the build of ${id} ended with ${manifest.images} images: ${JSON.stringify(manifest.build)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function get(url: string) {
  const response = await app.inject({ method: 'GET', url });
  return { status: response.statusCode, body: response.json() };
}

interface Reference {
  weights: Record<string, [number, number][]>;
  activations: Record<string, [number, number][]>;
  constant: number[];
  /** The neurons by variance over the images, highest first. */
  byVariance: number[];
}

/** numpy's neighbours of every neuron (top K other than the neuron, NaN left out) from the raw files. */
async function reference(): Promise<Reference> {
  const script = `
import json, sys
import numpy as np
w_file, means_file, images, C, D, K = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
W = np.fromfile(w_file, dtype="<f4").reshape(C, D).astype(np.float64)
X = np.fromfile(means_file, dtype="<f4")[: images * C].reshape(images, C).astype(np.float64)
Wn = W / np.linalg.norm(W, axis=1, keepdims=True)
cos = Wn @ Wn.T
constant = np.flatnonzero(X.std(axis=0) == 0)
with np.errstate(invalid="ignore", divide="ignore"):
    R = np.corrcoef(X, rowvar=False)
def top(row, n):
    order = [int(c) for c in np.argsort(-row, kind="stable") if c != n and not np.isnan(row[c])]
    return [[c, float(row[c])] for c in order[:K]]
out = {"weights": {}, "activations": {}, "constant": constant.tolist()}
out["byVariance"] = [int(c) for c in np.argsort(-X.var(axis=0), kind="stable")]
for n in range(C):
    out["weights"][str(n)] = top(cos[n], n)
    if n not in constant:
        out["activations"][str(n)] = top(R[n], n)
print(json.dumps(out))
`;
  const { stdout } = await promisify(execFile)(
    '/usr/bin/python3',
    [
      '-c',
      script,
      path.join(DEFAULT_MODEL_DIR, 'bilinear.f32'),
      app.collections.store.file(ID, FILES.means),
      String(manifest.images),
      String(app.clip.neuronCount),
      String(app.clip.embedDim),
      String(K),
    ],
    { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 },
  );
  return JSON.parse(stdout) as Reference;
}

type Row = { neuron: number; cosine: number; label: string | null; family: string | null };

/** The same neurons in the same order, up to ties: each cosine within 1e-5 of numpy's. */
function sameNeighbours(t: Test, got: Row[], want: [number, number][], what: string) {
  t.equal(got.length, want.length, `${what}: ${want.length} neighbours`);
  const swapsAreTies = got.every(
    (row, i) =>
      row.neuron === want[i][0] ||
      Math.abs(row.cosine - want[i][1]) < 1e-6 * Math.max(1, Math.abs(row.cosine)),
  );
  t.ok(swapsAreTies, `${what}: numpy's neurons, in its order`);
  t.ok(
    got.every((row, i) => Math.abs(row.cosine - want[i][1]) < 1e-5),
    `${what}: numpy's cosines (${got.map((row) => row.cosine.toFixed(4)).join(', ')})`,
  );
}

// The catalogue's strongest blue neuron (224), a word neuron (1), a shape neuron (2), the last one.
const NEURONS = [224, 1, 2, app.clip.neuronCount - 1];
const collected = Date.now();
const numpy = await reference();
t.comment(
  `setup: renders and app ${appReady - started} ms, collection of ${manifest.images} images ${collected - appReady} ms, numpy ${Date.now() - collected} ms`,
);
/** By activations: those, and the two that vary most over these images (many are dead on them). */
const MEASURED = [...new Set([...NEURONS, ...numpy.byVariance.slice(0, 2)])];

t.test('by weights: the cosines of W’s rows, as numpy computes them from bilinear.f32', async (t) => {
  for (const neuron of NEURONS) {
    const { status, body } = await get(`/v1/neurons/${neuron}/neighbours?by=weights&k=${K}`);
    t.equal(status, 200);
    t.equal(body.neuron, neuron);
    t.equal(body.by, 'weights');
    t.equal(body.collection, null);
    sameNeighbours(t, body.neighbours, numpy.weights[String(neuron)], `neuron ${neuron} by weights`);
    const first = body.neighbours[0] as Row;
    t.equal(first.label, app.attribution.catalogue.get(first.neuron)?.label ?? null, 'with its label');
  }
  const plain = await get(`/v1/neurons/224/neighbours`);
  t.equal(plain.body.by, 'weights', 'weights is the default');
  t.equal(plain.body.neighbours.length, 10, 'k is 10 by default');
});

t.test('by activations: Pearson’s r of the stored columns, as numpy computes it', async (t) => {
  t.equal(manifest.images, 28);
  t.equal(manifest.columnBlocks, 3, 'three column blocks and a tail of rows');
  const here = new NeighbourService({
    model: app.clip,
    catalogue: app.attribution.catalogue,
    collections: app.collections,
    thread: false,
  });
  let measured = 0;
  for (const neuron of MEASURED) {
    const url = `/v1/neurons/${neuron}/neighbours?by=activations&collection=${ID}&k=${K}`;
    const { status, body } = await get(url);
    if (numpy.constant.includes(neuron)) {
      t.equal(status, 409, `neuron ${neuron} is constant over the images`);
      continue;
    }
    measured++;
    t.equal(status, 200, JSON.stringify(body).slice(0, 300));
    t.equal(body.by, 'activations');
    t.equal(body.collection, ID);
    t.equal(body.images, 28);
    sameNeighbours(t, body.neighbours, numpy.activations[String(neuron)], `neuron ${neuron} by activations`);
    t.notOk(
      body.neighbours.some((row: Row) => numpy.constant.includes(row.neuron)),
      'constant neurons are left out',
    );
    t.same(
      body.neighbours.map((row: Row) => [row.neuron, row.cosine]),
      (await here.byActivations(manifest, neuron, K)).map((row) => [row.neuron, row.cosine]),
      `neuron ${neuron}: the thread's answer is the calling thread's`,
    );
  }
  t.ok(
    measured >= 2,
    `${measured} of ${MEASURED.length} neurons measured (${numpy.constant.length} constant)`,
  );
  if (numpy.constant.length > 0) {
    const dead = numpy.constant[0];
    const { status, body } = await get(`/v1/neurons/${dead}/neighbours?by=activations&collection=${ID}`);
    t.equal(status, 409);
    t.match(body.message, `neuron ${dead} is constant over the 28 images`);
  }
});

t.test('bad inputs are 4xx naming what is allowed', async (t) => {
  const cases: [string, number, RegExp][] = [
    ['/v1/neurons/99999/neighbours', 400, /out of range \(0 to 511\)/],
    ['/v1/neurons/99999/neighbours?by=activations', 400, /out of range/],
    ['/v1/neurons/1.5/neighbours', 400, /neuron/],
    ['/v1/neurons/1/neighbours?k=0', 400, /k/],
    ['/v1/neurons/1/neighbours?k=101', 400, /k/],
    ['/v1/neurons/1/neighbours?by=texts', 400, /weights.*activations/],
    ['/v1/neurons/1/neighbours?by=activations', 400, /needs a collection: pass \?collection=<id>/],
    ['/v1/neurons/1/neighbours?by=activations&collection=nope', 404, /collection "nope" not found/],
    ['/v1/neurons/1/neighbours?by=activations&collection=Bad_Id', 400, /collection must be a collection id/],
    ['/v1/neurons/1/neighbours?colour=red', 400, /colour/],
  ];
  for (const [url, status, message] of cases) {
    const answer = await get(url);
    t.equal(answer.status, status, `${url} is ${status}`);
    t.match(answer.body.message, message, answer.body.message);
  }
  await app.collections.create('empty-one', 'test');
  const empty = await get('/v1/neurons/1/neighbours?by=activations&collection=empty-one');
  t.equal(empty.status, 409, 'an empty collection is a 409');
  t.match(empty.body.message, /has 0 indexed images/);
});

t.test('GET /v1/neurons names the catalogue’s families (the explorer’s family filter)', async (t) => {
  const { status, body } = await get('/v1/neurons?limit=1');
  t.equal(status, 200);
  const families = [
    ...new Set(
      Array.from({ length: app.clip.neuronCount }, (_, id) => app.attribution.catalogue.get(id)?.family),
    ),
  ]
    .filter((family): family is string => typeof family === 'string')
    .sort();
  t.same(body.families, families, families.join(', '));
  for (const family of body.families as string[]) {
    const page = await get(`/v1/neurons?family=${family}&limit=500`);
    t.ok(
      page.body.neurons.every((row: { family: string }) => row.family === family),
      `family=${family}: ${page.body.total} neurons`,
    );
  }
});
