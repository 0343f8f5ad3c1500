/**
 * REQUEST_TIMEOUT_MS bounds the time a client waits: past it, a request still being worked on is
 * answered 503 with a message (over a real socket, which stays usable), and the service goes on.
 * The slow request is a real one: the sparse composition of the whole feelings wheel on the embedded
 * model, which takes seconds uncached.
 */
import path from 'node:path';
import t from 'tap';
import { buildTestApp } from './helpers/app.js';
import { repoRoot } from './helpers/tiny-model.js';

const LIMIT_MS = 300;

t.test('a request past REQUEST_TIMEOUT_MS gets a 503 that says so', async (t) => {
  const app = await buildTestApp({
    modelDir: path.join(repoRoot, 'models/toyworld'),
    requestTimeoutMs: LIMIT_MS,
  });
  t.teardown(() => app.close());
  const url = await app.listen({ port: 0, host: '127.0.0.1' });

  const started = performance.now();
  const slow = await fetch(`${url}/v1/emotions/fit`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ neuronsPerEmotion: 4 }),
  });
  const waited = performance.now() - started;
  t.equal(slow.status, 503);
  t.equal(slow.headers.get('retry-after'), '5');
  const body = (await slow.json()) as { message: string };
  t.match(body.message, /longer than 300 ms \(REQUEST_TIMEOUT_MS\)/);
  t.ok(waited >= LIMIT_MS && waited < LIMIT_MS + 5000, `answered after ${waited.toFixed(0)} ms`);

  // The service goes on answering; a fast request is not cut.
  const health = await fetch(`${url}/health`);
  t.equal(health.status, 200);
  const quick = await fetch(`${url}/v1/tokenize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ texts: ['red'] }),
  });
  t.equal(quick.status, 200);
});

t.test('REQUEST_TIMEOUT_MS=0 turns the limit off', async (t) => {
  const app = await buildTestApp({
    modelDir: path.join(repoRoot, 'models/toyworld'),
    requestTimeoutMs: 0,
  });
  t.teardown(() => app.close());
  const response = await app.inject({
    method: 'POST',
    url: '/v1/emotions/fit',
    payload: { emotions: ['happy', 'sad', 'angry'], neuronsPerEmotion: 2 },
  });
  t.equal(response.statusCode, 200);
});
