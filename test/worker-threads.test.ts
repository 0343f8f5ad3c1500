/**
 * Work on worker threads: the generic pool (answers, errors with their status, a dead thread
 * replaced, the event loop free while a thread computes) and the composition solver, whose thread
 * must give exactly what the same fits give in-process.
 */
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { threadId, type Worker } from 'node:worker_threads';
import t from 'tap';
import { ClipModel } from '../src/clip/clip-model.js';
import { loadConfig } from '../src/config.js';
import { CompositionSolver, type CompositionProblem } from '../src/emotions/composition-solver.js';
import type { Composition } from '../src/emotions/types.js';
import { HttpError } from '../src/errors.js';
import { WorkerPool } from '../src/threads/worker-pool.js';
import { plantedEmotions } from '../tools/solvers/planted.js';
import type { ProbeAnswer, ProbeRequest } from './fixtures/probe-thread.js';
import { repoRoot } from './helpers/tiny-model.js';

const PROBE = new URL('./fixtures/probe-thread.ts', import.meta.url);

t.test('a pool answers on another thread, keeps 4xx statuses, and replaces a dead thread', async (t) => {
  const pool = new WorkerPool<ProbeRequest, ProbeAnswer>(PROBE, 2);
  t.teardown(() => pool.close());
  const values = Float64Array.from([1, 2, 3]);
  const answers = await Promise.all(
    [0, 1, 2, 3].map(() => pool.run({ kind: 'echo', values: values.slice() })),
  );
  for (const answer of answers) t.same(Array.from(answer.values!), [2, 4, 6]);
  const threads = new Set(answers.map((answer) => answer.threadId));
  t.equal(threads.size, 2, 'requests spread over both threads');
  t.notOk(threads.has(threadId), 'none ran on this thread');

  const sent = Float64Array.from([5]);
  await pool.run({ kind: 'echo', values: sent }, [sent.buffer]);
  t.equal(sent.length, 0, 'a transferred buffer is moved, not copied');

  await t.rejects(pool.run({ kind: 'reject', message: 'bad neuron' }), {
    name: 'HttpError',
    statusCode: 400,
    message: 'bad neuron',
  });
  const crash = await pool.run({ kind: 'throw' }).catch((error: unknown) => error);
  t.ok(crash instanceof HttpError && crash.statusCode === 500, 'other errors become 500s');
  t.match((crash as Error).message, /not a 4xx/);

  await t.rejects(pool.run({ kind: 'exit' }), /worker thread stopped \(exit code 3\)/);
  const after = await Promise.all([0, 1].map(() => pool.run({ kind: 'echo', values })));
  t.ok(
    after.every((answer) => answer.values?.[0] === 2),
    'the dead thread is replaced on the next request',
  );
});

t.test('a thread that replaces a dead one answers the prelude first', async (t) => {
  const state: ProbeRequest[] = [];
  const pool = new WorkerPool<ProbeRequest, ProbeAnswer>(PROBE, 1, () => state);
  t.teardown(() => pool.close());
  t.equal((await pool.run({ kind: 'recall' })).remembered, undefined, 'an empty prelude at first');
  const remember: ProbeRequest = { kind: 'remember', value: 7 };
  await pool.run(remember);
  state.push(remember);
  await t.rejects(pool.run({ kind: 'exit' }), /exit code 3/);
  t.equal((await pool.run({ kind: 'recall' })).remembered, 7, 'the new thread got the state back');
});

t.test('the event loop runs while a thread computes', async (t) => {
  const pool = new WorkerPool<ProbeRequest, ProbeAnswer>(PROBE, 1);
  t.teardown(() => pool.close());
  await pool.run({ kind: 'echo', values: new Float64Array(1) }); // started
  let ticks = 0;
  const ticker = setInterval(() => (ticks += 1), 5);
  await pool.run({ kind: 'spin', ms: 300 });
  clearInterval(ticker);
  t.ok(ticks > 0, `${ticks} timer ticks during 300 ms of CPU on the thread`);
});

t.test('a thread answers its requests one at a time, in order', async (t) => {
  const pool = new WorkerPool<ProbeRequest, ProbeAnswer>(PROBE, 1);
  t.teardown(() => pool.close());
  const order: string[] = [];
  await Promise.all([
    pool.run({ kind: 'spin', ms: 100 }).then(() => order.push('spin')),
    pool.run({ kind: 'echo', values: new Float64Array(1) }).then(() => order.push('echo')),
  ]);
  t.same(order, ['spin', 'echo']);
});

t.test('a model released while a batch runs: the batch settles, nothing crashes', async (t) => {
  const config = { ...loadConfig({}), executionProviders: ['cpu' as const] };
  const model = await ClipModel.load(path.join(repoRoot, 'models/toyworld'), config);
  const first = await model.embedTexts(['a red circle']);
  t.equal(first[0].length, model.embedDim);
  const running = model.embedTexts(Array.from({ length: 64 }, (_, i) => `a blue square number ${i}`));
  await model.release();
  const outcome = await running.then(
    (rows) => `${rows.length} rows`,
    (error: Error) => error.message,
  );
  t.match(outcome, /^64 rows$|retry/, `the batch: ${outcome}`);
});

t.test('the threads start when the process runs from another working directory', async (t) => {
  // The service may be started as `node --import tsx /app/src/bin/server.ts` from anywhere: its threads
  // must find tsx and their modules from the source tree, not from the working directory.
  const url = (file: string) => JSON.stringify(pathToFileURL(path.join(repoRoot, file)).href);
  const script = [
    `const { ClipModel } = await import(${url('src/clip/clip-model.ts')});`,
    `const { loadConfig } = await import(${url('src/config.ts')});`,
    `const model = await ClipModel.load(${JSON.stringify(path.join(repoRoot, 'models/toyworld'))}, { ...loadConfig({}), executionProviders: ['cpu'] });`,
    `const [vector] = await model.embedTexts(['red']);`,
    `console.log('embedding of ' + vector.length + ' values');`,
    `await model.release();`,
  ].join('\n');
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', script],
    { cwd: tmpdir(), timeout: 60_000 },
  );
  t.match(stdout, /embedding of 128 values/);
});

t.test('a model whose inference thread died loads its sessions again on the next one', async (t) => {
  const config = { ...loadConfig({}), executionProviders: ['cpu' as const] };
  const model = await ClipModel.load(path.join(repoRoot, 'models/toyworld'), config);
  t.teardown(() => model.release());
  const [before] = await model.embedTexts(['a red circle']);
  // Simulates a crash: the thread is stopped from outside (reached through the model's internals).
  const pool = (model as unknown as { inference: { runner: { threads: { worker: Worker }[] } } }).inference
    .runner;
  await pool.threads[0].worker.terminate();
  const [after] = await model.embedTexts(['a red circle']);
  t.same(Array.from(after), Array.from(before), 'the same embedding from the new thread');
  const [{ product }] = await model.textAttributions([model.tokenizer.encode('a red circle').ids]);
  t.equal(product.length, model.neuronCount, 'every graph is back');
});

t.test('ORT_THREAD=false: the same numbers from sessions on the event loop', async (t) => {
  const config = { ...loadConfig({ ORT_THREAD: 'false' }), executionProviders: ['cpu' as const] };
  t.equal(config.inferenceThread, false);
  const dir = path.join(repoRoot, 'models/toyworld');
  const [onLoop, onThread] = await Promise.all([
    ClipModel.load(dir, config),
    ClipModel.load(dir, { ...config, inferenceThread: true }),
  ]);
  t.teardown(() => Promise.all([onLoop.release(), onThread.release()]));
  const texts = ['a red circle', 'a sad face', 'the word banana'];
  const [a, b] = await Promise.all([onLoop.embedTexts(texts), onThread.embedTexts(texts)]);
  t.same(
    a.map((row) => Array.from(row)),
    b.map((row) => Array.from(row)),
  );
  // The chained run (text, then W·t in the same trip): the text graph's own embeddings, and the
  // same W·t on the event loop as on the thread.
  const rows = texts.map((text) => onThread.tokenizer.encode(text).ids);
  const [ca, cb] = await Promise.all([onLoop.textAttributions(rows), onThread.textAttributions(rows)]);
  t.same(Array.from(ca[0].product), Array.from(cb[0].product));
  for (const chained of [ca, cb]) {
    t.same(
      chained.map(({ embedding }) => Array.from(embedding)),
      a.map((row) => Array.from(row)),
      'chained: the same text embeddings',
    );
    t.same(
      chained.map(({ product }) => Array.from(product)),
      ca.map(({ product }) => Array.from(product)),
      'chained: the same W·t',
    );
  }
});

t.test('a closed pool fails what is pending and refuses new work', async (t) => {
  const pool = new WorkerPool<ProbeRequest, ProbeAnswer>(PROBE, 1);
  const pending = t.rejects(pool.run({ kind: 'spin', ms: 2000 }), /closed/);
  await pool.close();
  await pending;
  await t.rejects(pool.run({ kind: 'echo', values: new Float64Array(1) }), /closed/);
});

t.test('the composition solver gives on its thread exactly what it gives in-process', async (t) => {
  const threaded = new CompositionSolver(1);
  const local = new CompositionSolver(0);
  t.teardown(() => threaded.close());
  const { rows, labels } = plantedEmotions(6, 4, 96, 2, 5);
  const base: Omit<CompositionProblem, 'selection' | 'model'> = {
    rows,
    labels,
    classCount: 6,
    exclude: [3, 7],
    scaling: 'shared',
    maxSweeps: 2000,
  };
  const problems: CompositionProblem[] = [
    { ...base, model: 'one-vs-rest', selection: { kind: 'support', size: 2 } },
    { ...base, model: 'one-vs-rest', selection: { kind: 'cv', folds: 4 } },
    { ...base, model: 'multinomial', selection: { kind: 'lambda', lambda: 0.05 } },
  ];
  for (const problem of problems) {
    const [there, here] = await Promise.all([threaded.compose(problem), local.compose(problem)]);
    const name = `${problem.model}, ${problem.selection.kind}`;
    t.same(there, here, name);
    t.ok(
      there.classes.every((fit) => fit.coef[3] === 0 && fit.coef[7] === 0),
      `${name}: excluded neurons stay out`,
    );
  }

  const concepts: Composition['concepts'] = {};
  const fit = await local.compose(problems[0]);
  fit.classes.forEach((k, c) => {
    const neurons = [...k.coef.entries()]
      .filter(([, w]) => w !== 0)
      .map(([neuron, weight]) => ({ neuron, weight, label: `n${neuron}` }));
    concepts[`c${c}`] = { ...k, neurons };
  });
  const [atlasThere, atlasHere] = await Promise.all([
    threaded.atlas({ concepts }, 2),
    local.atlas({ concepts }, 2),
  ]);
  t.same(atlasThere, atlasHere, 'the same atlas');
  t.ok(
    atlasThere.factorTops.every((factor) => factor.neurons.every((n) => n.label === `n${n.neuron}`)),
    'factor neurons keep their labels',
  );
  await t.rejects(threaded.atlas({ concepts }, 40), { statusCode: 400, message: /at most \d+ factors/ });
});
