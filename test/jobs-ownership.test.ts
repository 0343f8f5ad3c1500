/**
 * Jobs have owners (issue 21, failures 4 and 6), on both backends (in-process, and BullMQ on a
 * throwaway redis-server): identical requests of two clients share one job, and a cancel by one
 * only detaches it; a client that does not follow a job may not cancel it; the last subscriber's
 * cancel, or an admin's, stops it. Per-owner and global limits on queued jobs answer 429 / 503
 * with Retry-After. GET /v1/neurons/{id}/max-text answers with the best finished search of the
 * neuron whatever its parameters.
 */
import t, { type Test } from 'tap';
import type { App } from '../src/app.js';
import { startRedis, type RedisProcess } from '../bench/lib/processes.js';
import { buildTestApp } from './helpers/app.js';

const KEYS = { a: 'key-a', b: 'key-b', c: 'key-c', admin: 'key-admin' } as const;
type Who = keyof typeof KEYS;

async function startApp(t: Test, backend: 'memory' | 'bullmq', env: Record<string, string>): Promise<App> {
  let redis: RedisProcess | undefined;
  let app: App | undefined;
  t.teardown(async () => {
    await app?.close();
    await redis?.stop();
  });
  if (backend === 'bullmq') redis = await startRedis();
  const saved = { ...process.env };
  Object.assign(process.env, { WORKER_CONCURRENCY: '1', WORKER_IN_PROCESS: 'true' }, env);
  try {
    app = await buildTestApp({
      redisUrl: redis?.url,
      apiKeys: [KEYS.a, KEYS.b, KEYS.c],
      adminApiKeys: [KEYS.admin],
    });
  } finally {
    for (const name of ['WORKER_CONCURRENCY', 'WORKER_IN_PROCESS', ...Object.keys(env)]) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  }
  return app;
}

function client(app: App) {
  const auth = (who: Who) => ({ authorization: `Bearer ${KEYS[who]}` });
  return {
    post: (who: Who, body: object) =>
      app.inject({ method: 'POST', url: '/v1/search/max-text', payload: body, headers: auth(who) }),
    cancel: (who: Who, id: string) =>
      app.inject({ method: 'DELETE', url: `/v1/jobs/${id}`, headers: auth(who) }),
    view: async (id: string) =>
      (await app.inject({ url: `/v1/jobs/${id}`, headers: auth('a') })).json() as {
        state: string;
        subscribers?: number;
        progress: { steps: number };
      },
  };
}

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A search long enough to be running or queued for the whole test (cancelled at the end): 21 climbs
 * of 2,000 steps. One climb of 2,000 steps on the embedded model could finish within the test on a
 * fast machine, and the next queued job then ran, so the queue the test counts held one job less.
 */
const long = (neuron: number, seed = 0) => ({
  neuron,
  steps: 2000,
  batch: 16,
  restarts: 20,
  timeLimitS: 300,
  seed,
});

for (const backend of ['memory', 'bullmq'] as const) {
  t.test(`${backend}: owners, subscribers and cancels`, async (t) => {
    const app = await startApp(t, backend, {});
    const api = client(app);
    const first = await api.post('a', long(3));
    t.equal(first.statusCode, 202, first.body);
    const joined = await api.post('b', long(3));
    t.equal(joined.json().jobId, first.json().jobId, 'the identical request of b joins the job of a');
    t.equal(joined.json().deduplicated, true);
    const id = first.json().jobId as string;
    t.equal((await api.view(id)).subscribers, 2);

    const stranger = await api.cancel('c', id);
    t.equal(stranger.statusCode, 403, 'c follows nothing here and may not cancel it');
    t.match(stranger.json().message, /not submitted by you/);

    const detached = await api.cancel('b', id);
    t.equal(detached.statusCode, 200);
    t.equal(detached.json().detached, true);
    t.equal(detached.json().stopped, false, 'a still follows it: it runs on');
    t.not(detached.json().state, 'cancelled');
    t.equal((await api.view(id)).subscribers, 1);
    t.equal((await api.cancel('b', id)).statusCode, 403, 'b, detached, follows it no more');

    const last = await api.cancel('a', id);
    t.equal(last.json().stopped, true, "the last subscriber's cancel stops it");
    t.equal(last.json().state, 'cancelled');
    t.equal((await api.view(id)).state, 'cancelled');

    const other = await api.post('c', long(4));
    const admin = await api.cancel('admin', other.json().jobId);
    t.equal(admin.statusCode, 200);
    t.equal(admin.json().stopped, true, 'an admin key stops any job');
  });

  t.test(`${backend}: per-owner and global limits on queued jobs`, async (t) => {
    const app = await startApp(t, backend, { JOBS_MAX_PER_OWNER: '2', JOBS_MAX_QUEUED: '2' });
    const api = client(app);
    const ids: string[] = [];
    t.teardown(async () => {
      for (const id of ids) await api.cancel('admin', id);
    });
    for (const neuron of [1, 2]) {
      const response = await api.post('a', long(neuron));
      t.equal(response.statusCode, 202);
      ids.push(response.json().jobId);
    }
    // One runs (one worker), the other waits.
    await until(
      async () => ((await api.view(ids[0]!)).state === 'running' ? true : undefined),
      'a job running',
    );
    const third = await api.post('a', long(5));
    t.equal(third.statusCode, 429, 'a third search of a is refused');
    t.match(third.headers['retry-after'], /^\d+$/);
    t.match(third.json().message, /JOBS_MAX_PER_OWNER is 2/);

    const ofB = await api.post('b', long(6));
    t.equal(ofB.statusCode, 202, 'b has its own allowance');
    ids.push(ofB.json().jobId);
    const full = await api.post('c', long(7));
    t.equal(full.statusCode, 503, 'two searches wait: the queue is full');
    t.match(full.headers['retry-after'], /^\d+$/);
    t.match(full.json().message, /JOBS_MAX_QUEUED is 2/);
    const join = await api.post('c', long(6));
    t.equal(join.statusCode, 202, 'joining a queued job adds nothing to the queue');
    t.equal(join.json().jobId, ofB.json().jobId);

    // A cancelled job frees its owner's allowance.
    await api.cancel('a', ids[1]!);
    const again = await api.post('a', long(8));
    t.equal(again.statusCode, 202, again.body);
    ids.push(again.json().jobId);
  });
}

t.test(
  'GET /v1/neurons/{id}/max-text answers with the best finished search, whatever its parameters',
  async (t) => {
    const app = await startApp(t, 'memory', {});
    const api = client(app);
    const headers = { authorization: `Bearer ${KEYS.a}` };
    const submitted = await api.post('a', { neuron: 9, steps: 3, batch: 8, seed: 4 });
    const id = submitted.json().jobId as string;
    await until(
      async () => ((await api.view(id)).state === 'completed' ? true : undefined),
      'the search done',
    );
    const response = await app.inject({ url: '/v1/neurons/9/max-text', headers });
    t.equal(response.statusCode, 200, 'no new search: the finished one answers');
    t.equal(response.json().defaultParameters, false);
    t.match(response.json().parameters, { steps: 3, batch: 8, seed: 4 });
    const job = (await app.inject({ url: `/v1/jobs/${id}`, headers })).json();
    t.equal(response.json().text, job.result.text);
  },
);
