/**
 * Redis outages (issue 21, failure 7): while the Redis of the job queue is unreachable, the job
 * routes answer 503 with Retry-After at once, instead of waiting for Redis to come back; an open
 * event stream ends with a terminal `lost` event; once Redis is back (empty: it kept nothing), the
 * routes work again and a job lost with it is a 404.
 *
 * "At once" is checked against the outage itself: the test keeps Redis down until every answer has
 * come, so a route that waited for Redis would never answer; each must answer within 5 s (a
 * generous bound: the routes check the connection's state before sending any command).
 */
import t from 'tap';
import { startRedis, type RedisProcess } from '../bench/lib/processes.js';
import type { InjectOptions } from 'fastify';
import type { App } from '../src/app.js';
import { buildTestApp } from './helpers/app.js';

const ANSWER_WITHIN_MS = 5000;

async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'no answer'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'no answer'>((resolve) => (timer = setTimeout(() => resolve('no answer'), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function until(probe: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

t.test('job routes answer 503 at once while Redis is down, and recover', async (t) => {
  let redis: RedisProcess | undefined = await startRedis();
  const port = redis.port;
  let app: App | undefined;
  t.teardown(async () => {
    await app?.close();
    await redis?.stop();
  });
  // No worker here: the job stays queued, and nothing but the routes talks to the queue.
  process.env.WORKER_IN_PROCESS = 'false';
  try {
    app = await buildTestApp({ redisUrl: redis.url });
  } finally {
    delete process.env.WORKER_IN_PROCESS;
  }
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const body = { neuron: 3, steps: 50, batch: 8 };
  const queued = await app.inject({ method: 'POST', url: '/v1/search/max-text', payload: body });
  t.equal(queued.statusCode, 202, queued.body);
  const id = queued.json().jobId as string;
  t.equal((await app.inject({ url: `/v1/jobs/${id}` })).json().state, 'queued');

  // An event stream open across the outage (its first event read before Redis goes).
  const response = await fetch(`${base}/v1/jobs/${id}/events`);
  t.equal(response.status, 200);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let streamed = '';
  while (!/^event: progress$/m.test(streamed)) {
    const chunk = await reader.read();
    if (chunk.done) break;
    streamed += decoder.decode(chunk.value, { stream: true });
  }
  const stream = (async () => {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) return streamed;
      streamed += decoder.decode(chunk.value, { stream: true });
    }
  })();

  await redis.stop();
  redis = undefined;
  const requests: [string, InjectOptions][] = [
    ['GET job', { url: `/v1/jobs/${id}` }],
    ['POST search', { method: 'POST', url: '/v1/search/max-text', payload: { ...body, seed: 9 } }],
    ['DELETE job', { method: 'DELETE', url: `/v1/jobs/${id}` }],
    ['GET neuron max-text', { url: '/v1/neurons/4/max-text' }],
  ];
  for (const [what, request] of requests) {
    const sent = Date.now();
    const answer = await within(app.inject(request), ANSWER_WITHIN_MS);
    t.comment(`${what}: answered in ${Date.now() - sent} ms`);
    if (answer === 'no answer') {
      t.fail(`${what}: no answer within ${ANSWER_WITHIN_MS} ms while Redis is down`);
      continue;
    }
    t.equal(answer.statusCode, 503, `${what}: 503 (${answer.body.slice(0, 120)})`);
    t.match(answer.headers['retry-after'], /^\d+$/, `${what}: Retry-After`);
    t.match(answer.json().message, /Redis/);
  }
  const text = await within(stream, 30_000);
  t.not(text, 'no answer', 'the event stream ended');
  if (text !== 'no answer') {
    const events = [...text.matchAll(/^event: (.*)$/gm)].map((match) => match[1]);
    t.equal(events[0], 'progress');
    t.equal(events.at(-1), 'lost', `the stream ends with a terminal event (${events.join(', ')})`);
  }

  // Redis back, empty, on the same port: the routes recover; the job went with the old data.
  redis = await startRedis({ port });
  await until(
    async () => (await app!.inject({ url: `/v1/jobs/${id}` })).statusCode === 404,
    'the routes answering again',
  );
  const again = await app.inject({ method: 'POST', url: '/v1/search/max-text', payload: body });
  t.equal(again.statusCode, 202, again.body);
});
