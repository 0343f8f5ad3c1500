/**
 * The default emotion composition (GET /v1/emotions) on the embedded model is the same on any
 * machine: its work is bounded by counts, never by time. Checked three ways:
 *   - a fresh fit on an idle machine and one made while another thread burns a core give the
 *     same supports and weights, bit for bit;
 *   - the composition shipped in the model directory (default-composition.json, written by
 *     `npm run default-fit`) is that fit, bit for bit;
 *   - with the shipped file the service answers GET /v1/emotions without fitting and without a
 *     single onnxruntime run (the cold first visit costs no model work).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { createCache } from '../src/cache/index.js';
import { CompositionSolver } from '../src/emotions/composition-solver.js';
import { PRECOMPUTED_FILE, type PrecomputedComposition } from '../src/emotions/precomputed.js';
import { EmotionService } from '../src/emotions/service.js';
import type { Composition } from '../src/emotions/types.js';
import { buildTestApp } from './helpers/app.js';
import { repoRoot } from './helpers/tiny-model.js';

const TOYWORLD = path.join(repoRoot, 'models/toyworld');
const app = await buildTestApp({ modelDir: TOYWORLD });
t.teardown(() => app.close());

const quietLogger = { info: () => {}, warn: () => {}, error: () => {} };

/** A default composition fitted from scratch: its own cache, its own solver thread. */
async function freshDefaultFit(): Promise<Composition> {
  const cache = createCache({ ttlSeconds: 60, logger: quietLogger });
  const service = new EmotionService(app.attribution, cache, undefined, new CompositionSolver(1));
  service.useLexicalNeurons(() => app.emotions.lexicalNeurons());
  try {
    return await service.defaultComposition();
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

const idle = await freshDefaultFit();

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
    loaded = await freshDefaultFit();
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
  t.same(supports(shipped.composition), supports(idle), 'the same supports');
  t.same(shipped.composition.concepts, idle.concepts, 'the same weights, bit for bit');
  t.end();
});

t.test('GET /v1/emotions answers from the shipped composition without running the model', async (t) => {
  let runs = 0;
  const previous = app.clip.runObserver;
  app.clip.runObserver = (graph, rows, ms) => {
    runs += 1;
    previous?.(graph, rows, ms);
  };
  t.teardown(() => (app.clip.runObserver = previous));
  const response = await app.inject({ method: 'GET', url: '/v1/emotions' });
  t.equal(response.statusCode, 200, response.body);
  const body = response.json<{ fitId: string }>();
  t.equal(body.fitId, idle.fitId, 'the default fit');
  t.equal(runs, 0, 'no onnxruntime run: nothing was embedded or fitted');
});
