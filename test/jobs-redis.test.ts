/**
 * Search jobs on BullMQ with a real Redis (a throwaway redis-server on a free port): the HTTP server
 * does not work jobs itself (WORKER_IN_PROCESS=false); two `src/bin/worker.ts` processes, spawned with
 * tsx, share the queue. A job is followed over SSE to completion, a job is cancelled mid-way, and
 * a job whose worker is killed with SIGKILL mid-search is finished by the other worker once the
 * dead worker's lock expires (BullMQ's stalled-job check; WORKER_LOCK_MS=2000 here). A worker
 * stopped with SIGTERM mid-search hands its job straight back: with a 60 s lock, the other worker
 * takes it over within seconds. A taken-over search goes on from its last reported state.
 */
import t, { type Test } from 'tap';
import { once } from 'node:events';
import net from 'node:net';
import type { App } from '../src/app.js';
import { startRedis, stopProcess, type RedisProcess } from '../bench/lib/processes.js';
import { buildTestApp, referenceModelDir } from './helpers/app.js';
import { startWorker, type WorkerProcess } from './helpers/worker-process.js';

async function until<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs = 60_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const started = (worker: WorkerProcess, id: string) =>
  worker.lines.some((line) => line.msg === 'job started' && line.job === id);

async function view(app: App, id: string) {
  return (await app.inject({ url: `/v1/jobs/${id}` })).json();
}

async function sseEvents(url: string): Promise<string[]> {
  const text = await (await fetch(url)).text();
  return [...text.matchAll(/^event: (.*)$/gm)].map((match) => match[1]);
}

/**
 * A throwaway Redis, two `src/bin/worker.ts` processes holding job locks for `lockMs`, and an app that
 * does not work jobs itself; all torn down with `t`. Resolves once both workers are ready.
 */
async function startCluster(t: Test, lockMs: number): Promise<{ app: App; workers: WorkerProcess[] }> {
  // Torn down whatever step fails below: the workers, the app, then Redis.
  const started: { redis?: RedisProcess; app?: App } = {};
  const workers: WorkerProcess[] = [];
  t.teardown(async () => {
    await Promise.all(workers.map((worker) => stopProcess(worker.child, 'SIGKILL')));
    await started.app?.close();
    await started.redis?.stop();
  });
  started.redis = await startRedis();
  const redisUrl = started.redis.url;
  const modelDir = await referenceModelDir();
  const workerEnv = {
    ...process.env,
    REDIS_URL: redisUrl,
    MODEL_DIR: modelDir,
    ORT_PROVIDERS: 'cpu',
    ORT_INTRA_OP_THREADS: '1',
    WORKER_CONCURRENCY: '1',
    WORKER_LOCK_MS: String(lockMs),
  };
  workers.push(startWorker(workerEnv), startWorker(workerEnv));
  process.env.WORKER_IN_PROCESS = 'false';
  let app: App;
  try {
    app = started.app = await buildTestApp({ redisUrl, modelDir });
  } finally {
    delete process.env.WORKER_IN_PROCESS;
  }
  await until(
    () => workers.every((worker) => worker.lines.some((line) => line.msg === 'worker ready')),
    'both workers ready',
    120_000,
  );
  return { app, workers };
}

t.test('search jobs on BullMQ with two worker processes', async (t) => {
  const { app, workers } = await startCluster(t, 2000);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as net.AddressInfo).port}`;
  const post = async (payload: object) =>
    (await app.inject({ method: 'POST', url: '/v1/search/max-text', payload })).json();

  t.test('a job followed over SSE to completion', async (t) => {
    const { jobId } = await post({ neuron: 2, steps: 30, batch: 32 });
    const events = await sseEvents(`${base}/v1/jobs/${jobId}/events`);
    t.equal(events.at(-1), 'completed');
    t.ok(events.slice(0, -1).every((event) => event === 'progress'));
    const done = await view(app, jobId);
    // (A job whose lock lapsed on a loaded machine is taken over and resumed: its curve is shorter.)
    t.equal(done.result.curve.length, 30 - (done.result.resumedFrom?.steps ?? 0));
    t.equal(done.result.steps, 30);
    const again = await post({ neuron: 2, steps: 30, batch: 32 });
    t.equal(again.cached, true, 'the result is cached in Redis for identical requests');
  });

  t.test('a job cancelled mid-way', async (t) => {
    const { jobId } = await post({ neuron: 4, steps: 2000, restarts: 50, timeLimitS: 120 });
    await until(async () => (await view(app, jobId)).progress.steps >= 5 || undefined, 'progress');
    const cancelled = (await app.inject({ method: 'DELETE', url: `/v1/jobs/${jobId}` })).json();
    t.equal(cancelled.state, 'cancelled');
    const events = await sseEvents(`${base}/v1/jobs/${jobId}/events`);
    t.same(events.slice(-1), ['cancelled']);
    // The search stops at once: its view stays that of the acknowledgement, and no result is kept.
    await until(
      () => workers.some((worker) => worker.lines.some((l) => l.msg === 'job finished' && l.job === jobId)),
      'the worker to stop',
    );
    const final = await view(app, jobId);
    t.equal(final.state, 'cancelled');
    t.same(final.progress, cancelled.progress, 'no step after the acknowledgement');
    t.notOk(final.result, 'no result is stored');
    t.ok(cancelled.progress.steps < 2000, `stopped after ${cancelled.progress.steps} of 2000 steps`);
  });

  t.test('a worker killed mid-job: the other worker finishes it', async (t) => {
    const { jobId } = await post({ neuron: 9, steps: 600, restarts: 50, timeLimitS: 300, seed: 3 });
    const first = await until(
      () => workers.find((worker) => started(worker, jobId)),
      'a worker to take the job',
    );
    const other = workers.find((worker) => worker !== first)!;
    await until(async () => (await view(app, jobId)).progress.steps >= 10 || undefined, 'progress');
    t.equal((await view(app, jobId)).state, 'running');
    first.child.kill('SIGKILL');
    const killedAt = Date.now();
    await until(() => started(other, jobId), 'the other worker to take the job over', 60_000);
    t.comment(`taken over ${Date.now() - killedAt} ms after the kill`);
    const done = await until(
      async () => {
        const current = await view(app, jobId);
        return current.state === 'completed' || current.state === 'failed' ? current : undefined;
      },
      'the job to finish',
      180_000,
    );
    t.equal(done.state, 'completed');
    t.equal(done.result.steps, 600);
    // The other worker went on from the dead one's last reported state, not from step 0.
    t.ok(done.result.resumedFrom?.steps >= 10, `resumed at step ${done.result.resumedFrom?.steps}`);
    t.equal(done.result.curve.length, 600 - done.result.resumedFrom.steps, 'the curve of the steps after it');
    t.ok(done.result.score >= done.result.resumedFrom.score, 'no worse than the state it resumed');
  });
});

t.test('a worker stopped with SIGTERM hands its running job back to the queue', async (t) => {
  const lockMs = 60_000;
  const { app, workers } = await startCluster(t, lockMs);
  const { jobId } = (
    await app.inject({
      method: 'POST',
      url: '/v1/search/max-text',
      payload: { neuron: 7, steps: 400, restarts: 50, timeLimitS: 300, seed: 5 },
    })
  ).json();
  const first = await until(
    () => workers.find((worker) => started(worker, jobId)),
    'a worker to take the job',
  );
  const other = workers.find((worker) => worker !== first)!;
  await until(async () => (await view(app, jobId)).progress.steps >= 5 || undefined, 'progress');
  const exited = once(first.child, 'exit');
  first.child.kill('SIGTERM');
  const stoppedAt = Date.now();
  const [code] = (await exited) as [number | null];
  t.equal(code, 0, 'the stopped worker exits cleanly');
  t.ok(
    first.lines.some((line) => line.msg === 'worker closed; running jobs handed back'),
    'it says it handed its jobs back',
  );
  await until(() => started(other, jobId), 'the other worker to take the job', lockMs / 2);
  const takenAfter = Date.now() - stoppedAt;
  t.ok(
    takenAfter < lockMs / 2,
    `taken over ${takenAfter} ms after SIGTERM, long before the ${lockMs} ms lock`,
  );
  const done = await until(
    async () => {
      const current = await view(app, jobId);
      return current.state === 'completed' || current.state === 'failed' ? current : undefined;
    },
    'the job to finish',
    180_000,
  );
  t.equal(done.state, 'completed');
  t.ok(done.result, `a result: ${JSON.stringify(done).slice(0, 600)}`);
  t.equal(done.result?.steps, 400, 'the steps of both workers');
  t.ok(
    done.result.resumedFrom?.steps >= 5,
    `the second worker resumed at step ${done.result.resumedFrom?.steps}`,
  );
  t.equal(done.result.stopReason, 'steps');
});

t.test('the server works jobs itself unless WORKER_IN_PROCESS=false, and closes cleanly', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const app = await buildTestApp({
    redisUrl: redis.url,
    modelDir: await referenceModelDir(),
  });
  // Identical requests at once share one job (BullMQ's deduplication, atomic in Redis).
  const answers = await Promise.all(
    [1, 2, 3, 4].map(() =>
      app.inject({
        method: 'POST',
        url: '/v1/search/max-text',
        payload: { neuron: 1, steps: 10, batch: 16 },
      }),
    ),
  );
  const ids = answers.map((answer) => answer.json().jobId as string);
  t.equal(new Set(ids).size, 1, `one job for four simultaneous identical requests: ${ids.join(', ')}`);
  const jobId = ids[0];
  const done = await until(async () => {
    const current = await view(app, jobId);
    return current.state === 'completed' ? current : undefined;
  }, 'the in-process worker to finish');
  t.equal(done.result.steps, 10);
  const closed = await Promise.race([
    app.close().then(() => 'closed'),
    new Promise((resolve) => setTimeout(() => resolve('hung'), 15_000)),
  ]);
  t.equal(closed, 'closed');
});
