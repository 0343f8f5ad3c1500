/**
 * The default emotion composition (GET /v1/emotions) on the embedded model is the same on any
 * machine: its work is bounded by counts, never by time. Checked three ways:
 *   - a fresh fit on an idle machine and one made while another thread burns a core give the
 *     same supports and weights, bit for bit;
 *   - the composition shipped in the model directory (default-composition.json, written by
 *     `npm run default-fit`) is that fit and its atlases are the service's, bit for bit where
 *     onnxruntime's kernels round as on the machine that wrote it (a CPU with AVX-512); elsewhere
 *     (an AMD EPYC with AVX2 alone) the same supports, weights and loadings within 1e-5 (the
 *     atlases' UMAP layouts then differ). The service serves the file, so every machine answers
 *     the shipped numbers;
 *   - with the shipped file the service answers GET /v1/emotions and the atlas without fitting,
 *     without a single text-graph run and without waiting for the word index its lexical set comes
 *     from (a fresh start builds it in the background): the cold first visit costs no model work.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { createCache } from '../src/cache/index.js';
import { CompositionSolver } from '../src/emotions/composition-solver.js';
import { PRECOMPUTED_FILE, type PrecomputedComposition } from '../src/emotions/precomputed.js';
import { EmotionService } from '../src/emotions/service.js';
import type { Atlas, Composition } from '../src/emotions/types.js';
import { buildTestApp } from './helpers/app.js';
import { repoRoot } from './helpers/tiny-model.js';

const TOYWORLD = path.join(repoRoot, 'models/toyworld');
const app = await buildTestApp({ modelDir: TOYWORLD });
t.teardown(() => app.close());

const quietLogger = { info: () => {}, warn: () => {}, error: () => {} };

/** A default composition fitted from scratch (its own cache and solver thread), with its atlases when asked. */
async function freshDefaultFit(
  withAtlases: boolean,
): Promise<Composition & { atlases: Record<string, Atlas> }> {
  const cache = createCache({ ttlSeconds: 60, logger: quietLogger });
  const service = new EmotionService(app.attribution, cache, undefined, new CompositionSolver(1));
  service.useLexicalNeurons(() => app.words.lexicalSet(undefined, { waitForBuild: true }));
  try {
    const { composition } = await service.defaultComposition();
    if (!withAtlases) return { ...composition, atlases: {} };
    return { ...composition, atlases: { 2: await service.atlas(2), 7: await service.atlas(7) } };
  } finally {
    await service.close();
  }
}

/** A thread that spins until stopped: on two cores, the solver shares its machine with it. */
function burnCores(): () => Promise<void> {
  const threads = Array.from(
    { length: 1 },
    () =>
      new Worker(
        'const { parentPort } = require("node:worker_threads"); let stop = false; parentPort.on("message", () => (stop = true)); (function spin() { const end = Date.now() + 50; while (Date.now() < end); if (!stop) setImmediate(spin); else process.exit(0); })();',
        { eval: true },
      ),
  );
  return async () => {
    await Promise.all(
      threads.map(
        (thread) =>
          new Promise<void>((resolve) => {
            thread.once('exit', () => resolve());
            thread.postMessage('stop');
          }),
      ),
    );
  };
}

const supports = (composition: Composition) =>
  Object.fromEntries(
    Object.entries(composition.concepts).map(([name, fit]) => [name, fit.neurons.map((n) => n.neuron)]),
  );

/**
 * How close a fit on another CPU comes to the shipped one, relative to max(1, |a|, |b|): the text
 * embeddings differ by about 1e-7 relative, and the solver stops within its own tolerance of the
 * optimum, so weights and loadings moved by up to 2.4e-6 on an AMD EPYC with AVX2 alone.
 */
const TOLERANCE = 1e-5;

/**
 * The same structure, strings and booleans, integers exactly, and other numbers within TOLERANCE:
 * for numbers computed from onnxruntime's text embeddings on another CPU. Keys in `skip` are not
 * compared. Returns the first difference's path, or undefined.
 */
function firstDifference(
  a: unknown,
  b: unknown,
  skip: ReadonlySet<string> = new Set(),
  at = '$',
): string | undefined {
  if (typeof a === 'number' && typeof b === 'number') {
    if (Number.isInteger(a) && Number.isInteger(b)) return a === b ? undefined : `${at}: ${a} vs ${b}`;
    const close = Math.abs(a - b) <= TOLERANCE * Math.max(1, Math.abs(a), Math.abs(b));
    return close ? undefined : `${at}: ${a} vs ${b}`;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${at}: ${a.length} vs ${b.length} entries`;
    for (let i = 0; i < a.length; i++) {
      const found = firstDifference(a[i], b[i], skip, `${at}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = Object.keys(a)
      .filter((key) => !skip.has(key))
      .sort();
    if (
      keys.join() !==
      Object.keys(b)
        .filter((key) => !skip.has(key))
        .sort()
        .join()
    )
      return `${at}: keys differ`;
    for (const key of keys) {
      const found = firstDifference(
        (a as Record<string, unknown>)[key],
        (b as Record<string, unknown>)[key],
        skip,
        `${at}.${key}`,
      );
      if (found) return found;
    }
    return undefined;
  }
  return Object.is(a, b) ? undefined : `${at}: ${String(a)} vs ${String(b)}`;
}

const idle = await freshDefaultFit(true);

t.test('the default fit converges for every emotion', (t) => {
  const fits = Object.values(idle.concepts);
  t.equal(fits.length, 126, 'the whole wheel');
  t.equal(fits.filter((fit) => fit.converged).length, 126, 'every emotion converged');
  t.equal(idle.work.limit, null, 'one-vs-rest fits have no work budget to run out of');
  t.notOk(idle.work.exhausted);
  t.end();
});

t.test('a loaded machine gives the same default fit, bit for bit', async (t) => {
  const stop = burnCores();
  let loaded: Composition;
  try {
    loaded = await freshDefaultFit(false);
  } finally {
    await stop();
  }
  t.same(supports(loaded), supports(idle), 'the same supports');
  t.same(loaded.concepts, idle.concepts, 'the same weights, λ, objectives and iterations');
  t.equal(loaded.work.passes, idle.work.passes, `the same work: ${idle.work.passes} Newton steps`);
});

t.test('the shipped default composition is the fit the service computes', (t) => {
  const file = path.join(TOYWORLD, PRECOMPUTED_FILE);
  t.ok(existsSync(file), `${PRECOMPUTED_FILE} is in the model directory`);
  const shipped = JSON.parse(readFileSync(file, 'utf8')) as PrecomputedComposition;
  t.equal(shipped.model, app.clip.directory.sha256, 'for this model (its clip.json hash)');
  t.equal(shipped.key, app.emotions.keyOf(idle.fitId), 'under the fit id and solver version of today');
  t.equal(shipped.lexicalBasis, app.words.lexicalBasis(), 'for the lexical set this service detects');
  t.equal(shipped.lexical.neurons, idle.excluded, 'naming the lexical set it masked');
  t.same(supports(shipped.composition), supports(idle), 'the same supports');
  t.equal(
    firstDifference(shipped.composition.concepts, idle.concepts),
    undefined,
    'the same weights, λ, objectives',
  );
  if (JSON.stringify(shipped.composition.concepts) === JSON.stringify(idle.concepts)) {
    t.same(
      shipped.atlases,
      idle.atlases,
      'the same weights bit for bit, and the same atlases of 2 and 7 factors',
    );
  } else {
    // The layout (x, y) is a seeded UMAP of the loadings: the same input gives the same layout,
    // but a difference of 1e-8 gives another one. The factors and their loadings must agree.
    t.equal(
      firstDifference(shipped.atlases, idle.atlases, new Set(['x', 'y'])),
      undefined,
      'the same factors and loadings of the atlases of 2 and 7 factors (this CPU rounds the embeddings otherwise)',
    );
  }
  t.end();
});

t.test('a fresh start answers from the shipped file, before its word index is built', async (t) => {
  // A data directory of its own: the word index is built in the background after start.
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'default-fit-'));
  const fresh = await buildTestApp({ modelDir: TOYWORLD, dataDir });
  t.teardown(async () => {
    await fresh.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const runs: string[] = [];
  fresh.clip.runObserver = (graph) => runs.push(graph);
  const [emotions, atlas] = await Promise.all([
    fresh.inject({ method: 'GET', url: '/v1/emotions' }),
    fresh.inject({ method: 'GET', url: '/v1/emotions/atlas?factors=2' }),
  ]);
  t.equal(emotions.statusCode, 200, emotions.body);
  t.equal(atlas.statusCode, 200, atlas.body);
  t.equal(emotions.json<{ fitId: string }>().fitId, idle.fitId, 'the default fit');
  const shipped = JSON.parse(
    readFileSync(path.join(TOYWORLD, PRECOMPUTED_FILE), 'utf8'),
  ) as PrecomputedComposition;
  t.same(
    atlas.json<{ emotions: unknown }>().emotions,
    shipped.atlases[2].emotions,
    'its atlas, from the file',
  );
  t.equal(runs.filter((graph) => graph === 'text' || graph === 'bilinear').length, 0, 'no text embedded');
  const index = await fresh.words.lexicalSet(undefined, { waitForBuild: true });
  t.equal(index.neurons.length, idle.excluded, 'the index built since detects the set the file masked');
});
