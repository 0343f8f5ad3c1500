/**
 * Search jobs on the in-process queue (no Redis), through the real app: bad inputs give 4xx, a job
 * is followed over Server-Sent Events to completion on a listening socket, an identical request is
 * answered from the cache, a running job is cancelled mid-way, and GET /v1/neurons/{id}/max-text
 * starts a search and then answers from the cache.
 */
import t from 'tap';
import { attribution } from '../src/attribution/bilinear.js';
import type { App } from '../src/app.js';
import { normaliseRequest } from '../src/search/request.js';
import { buildTestApp } from './helpers/app.js';

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

/** Reads a text/event-stream response to its end; `onEvent` sees each event as it arrives. */
async function readEvents(response: Response, onEvent?: (event: SseEvent) => void): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!/^(event|data):/m.test(block)) continue; // a comment (heartbeat) block
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? '{}') as Record<string, unknown>;
      events.push({ event, data });
      onEvent?.({ event, data });
    }
  }
  return events;
}

/** Until no search runs in this process (the metrics' jobs_running gauge is 0). */
async function waitForIdle(app: App, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const metrics = (await app.inject({ url: '/metrics' })).body;
    if (/^jobs_running 0$/m.test(metrics)) return;
    if (Date.now() > deadline) throw new Error(`a search still runs after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function waitForState(app: App, id: string, states: string[], timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = (await app.inject({ url: `/v1/jobs/${id}` })).json();
    if (states.includes(view.state)) return view;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${view.state} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

t.test('search jobs on the in-process queue', async (t) => {
  delete process.env.WORKER_IN_PROCESS;
  const app = await buildTestApp({ redisUrl: undefined });
  t.teardown(() => app.close());
  const C = app.clip.neuronCount;
  const post = (payload: unknown) =>
    app.inject({ method: 'POST', url: '/v1/search/max-text', payload: payload as object });

  t.test('bad inputs give 4xx with a message', async (t) => {
    const cases: [unknown, RegExp][] = [
      [{}, /exactly one of "neuron" and "direction"/],
      [{ neuron: 0, direction: new Array(C).fill(1) }, /exactly one/],
      [{ neuron: C }, /out of range/],
      [{ neuron: -1 }, /neuron/],
      [{ direction: [1, 2, 3] }, new RegExp(`${C} neurons`)],
      [{ direction: new Array(C).fill(0) }, /zeros/],
      [{ neuron: 0, length: 0 }, /length/],
      [{ neuron: 0, length: 17 }, /length/],
      [{ neuron: 0, steps: 100_000 }, /steps/],
      [{ neuron: 0, batch: 100_000 }, /batch/],
      [{ neuron: 0, restarts: 1000 }, /restarts/],
      [{ neuron: 0, timeLimitS: 86_400 }, /timeLimitS/],
      [{ neuron: 0, fluency: -1 }, /fluency/],
      [{ neuron: 0, colour: 'red' }, /colour/],
      [{ neuron: 0, excludeLexical: true }, /excludeLexical applies to a direction/],
    ];
    for (const [payload, message] of cases) {
      const response = await post(payload);
      t.equal(response.statusCode, 400, JSON.stringify(payload).slice(0, 80));
      t.match(response.json().message, message);
    }
    // JSON can spell a non-finite number: 1e999 parses to Infinity.
    const nonFinite = await app.inject({
      method: 'POST',
      url: '/v1/search/max-text',
      headers: { 'content-type': 'application/json' },
      payload: `{"direction": [1e999${',0'.repeat(C - 1)}]}`,
    });
    t.equal(nonFinite.statusCode, 400);
    t.equal((await app.inject({ url: '/v1/jobs/no-such-job' })).statusCode, 404);
    t.equal((await app.inject({ method: 'DELETE', url: '/v1/jobs/no-such-job' })).statusCode, 404);
    t.equal((await app.inject({ url: '/v1/jobs/no-such-job/events' })).statusCode, 404);
    t.equal((await app.inject({ url: `/v1/jobs/cached-${'0'.repeat(64)}` })).statusCode, 404);
    t.equal((await app.inject({ url: '/v1/jobs/bad%20id' })).statusCode, 400);
    t.equal((await app.inject({ url: `/v1/neurons/${C}/max-text` })).statusCode, 400);
  });

  t.test('no wall-clock limit unless asked; a search a limit stopped is not cached', async (t) => {
    t.equal(normaliseRequest({ neuron: 1 }, C).timeLimitS, null, 'the default search stops by work only');
    t.equal(normaliseRequest({ neuron: 1, timeLimitS: 5 }, C).timeLimitS, 5);
    // 2,000 steps of 8 candidates cannot finish in 0.1 s on any machine: the limit stops it.
    const body = { neuron: 1, steps: 2000, batch: 8, restarts: 50, timeLimitS: 0.1, seed: 9 };
    const first = await post(body);
    t.equal(first.statusCode, 202);
    const view = await waitForState(app, first.json().jobId, ['completed']);
    t.equal((view.result as { stopReason: string }).stopReason, 'time');
    const again = await post(body);
    t.equal(again.statusCode, 202);
    t.equal(again.json().cached, false, 'a new search, not the machine-dependent answer');
    await waitForState(app, again.json().jobId, ['completed']);
  });

  t.test('a job followed over SSE to completion; then answered from the cache', async (t) => {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const body = { neuron: 3, steps: 40, batch: 32, seed: 5 };
    const submitted = await post(body);
    t.equal(submitted.statusCode, 202);
    const { jobId, cached } = submitted.json();
    t.equal(cached, false);
    t.equal(submitted.headers.location, `/v1/jobs/${jobId}`);
    const response = await fetch(`${base}/v1/jobs/${jobId}/events`, {
      headers: { origin: 'https://dash.example' },
    });
    t.equal(response.status, 200);
    t.match(response.headers.get('content-type'), /^text\/event-stream/);
    // The hijacked stream keeps the hooks' headers: EventSource on another origin needs CORS's.
    t.equal(response.headers.get('access-control-allow-origin'), '*', 'CORS on the event stream');
    t.equal(
      response.headers.get('x-content-type-options'),
      'nosniff',
      'security headers on the event stream',
    );
    const events = await readEvents(response);
    const last = events.at(-1)!;
    t.equal(last.event, 'completed');
    const progress = events.filter((e) => e.event === 'progress');
    t.ok(progress.length >= 1, `${progress.length} progress events`);
    t.equal(events.length, progress.length + 1, 'progress events, then one final event');
    const scores = progress.map((e) => e.data.bestScore).filter((s) => s !== null) as number[];
    for (let i = 1; i < scores.length; i++) t.ok(scores[i] >= scores[i - 1], 'best score never falls');
    const result = last.data.result as { text: string; score: number; curve: number[]; top: unknown[] };
    t.equal(result.curve.length, 40);
    t.ok(result.top.length > 1);

    // The score is the neuron's attribution (normalize "unit") of the text, as the API reports it.
    const check = await app.inject({
      method: 'POST',
      url: '/v1/attribution/text',
      payload: { texts: [result.text], full: true },
    });
    const vector = check.json().results[0].vector as number[];
    t.ok(Math.abs(vector[3] - result.score) < 1e-4, `${vector[3]} vs ${result.score}`);
    const [embedding] = await app.clip.embedTexts([result.text]);
    t.ok(Math.abs(attribution(app.clip.bilinear, embedding, 'unit')[3] - result.score) < 1e-4);

    // A client that connects after the end gets the final event at once.
    const late = await readEvents(await fetch(`${base}/v1/jobs/${jobId}/events`));
    t.same(
      late.map((e) => e.event),
      ['completed'],
    );

    // The identical request: 202 with a job that is already completed, holding the same result.
    const again = await post({ ...body, length: 6 });
    t.equal(again.statusCode, 202);
    t.equal(again.json().cached, true);
    const view = (await app.inject({ url: `/v1/jobs/${again.json().jobId}` })).json();
    t.equal(view.state, 'completed');
    t.same(view.result, result);
    const cachedEvents = await readEvents(await fetch(`${base}/v1/jobs/${again.json().jobId}/events`));
    t.same(
      cachedEvents.map((e) => e.event),
      ['completed'],
    );
  });

  t.test('identical running requests share one job; a running job is cancelled mid-way', async (t) => {
    const body = { neuron: 7, steps: 2000, batch: 64, timeLimitS: 120, seed: 1 };
    // Five identical requests at once (no await between them): one job.
    const [first, ...others] = (await Promise.all([1, 2, 3, 4, 5].map(() => post(body)))).map((r) =>
      r.json(),
    );
    t.same(new Set(others.map((other) => other.jobId)), new Set([first.jobId]), 'one job for all five');
    t.same(
      others.map((other) => other.deduplicated),
      [true, true, true, true],
    );
    const second = (await post(body)).json();
    t.equal(second.jobId, first.jobId);
    t.equal(second.deduplicated, true);
    const deadline = Date.now() + 60_000;
    let view = await waitForState(app, first.jobId, ['running']);
    while (view.progress.steps < 5 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      view = (await app.inject({ url: `/v1/jobs/${first.jobId}` })).json();
    }
    const cancelled = await app.inject({ method: 'DELETE', url: `/v1/jobs/${first.jobId}` });
    t.equal(cancelled.statusCode, 200);
    t.equal(cancelled.json().state, 'cancelled');
    const events = await readEvents(await fetchEvents(app, first.jobId));
    t.equal(events.at(-1)!.event, 'cancelled');
    // The search stops at once: no step after the acknowledgement, and no result is kept.
    t.equal(cancelled.json().stopped, true);
    const acknowledged = cancelled.json().progress;
    await waitForIdle(app);
    const final = (await app.inject({ url: `/v1/jobs/${first.jobId}` })).json();
    t.equal(final.state, 'cancelled');
    t.same(final.progress, acknowledged, 'the view is the one of the acknowledgement');
    t.notOk(final.result, 'no result is stored');
    t.ok(acknowledged.steps < 2000, `stopped after ${acknowledged.steps} steps`);
    const fresh = (await post(body)).json();
    t.not(fresh.jobId, first.jobId, 'after a cancellation the same request starts a new job');
    await app.inject({ method: 'DELETE', url: `/v1/jobs/${fresh.jobId}` });
    // A cancelled search is not cached: the same request starts a new job.
    const retry = (await post(body)).json();
    t.not(retry.jobId, first.jobId);
    t.equal(retry.cached, false);
    await app.inject({ method: 'DELETE', url: `/v1/jobs/${retry.jobId}` });
  });

  t.test('excludeLexical: a direction searched without the lexical set', async (t) => {
    const response = await post({ direction: new Array(C).fill(1), excludeLexical: true, steps: 1 });
    t.equal(response.statusCode, 202, response.body.slice(0, 200));
    const { lexical, jobId } = response.json();
    t.comment(JSON.stringify(lexical));
    t.equal(lexical.masked, lexical.neurons, 'every lexical weight zeroed');
    t.same(lexical.targets, [], 'no lexical neuron left in the direction');
    const plain = await post({ direction: new Array(C).fill(1), steps: 1 });
    t.equal(plain.json().lexical.masked, 0);
    t.equal(plain.json().lexical.targets.length, lexical.neurons, 'unmasked, the direction holds them all');
    for (const id of [jobId, plain.json().jobId])
      await app.inject({ method: 'DELETE', url: `/v1/jobs/${id}` });
  });

  t.test('GET /v1/neurons/{id}/max-text starts the default search, then answers 200', async (t) => {
    const started = await app.inject({ url: '/v1/neurons/11/max-text' });
    t.equal(started.statusCode, 202);
    const view = await waitForState(app, started.json().jobId, ['completed'], 120_000);
    t.equal(view.result.steps, view.progress.totalSteps);
    const done = await app.inject({ url: '/v1/neurons/11/max-text' });
    t.equal(done.statusCode, 200);
    const { lexical, parameters, defaultParameters, ...result } = done.json();
    t.same(result, view.result);
    t.equal(defaultParameters, true, 'the default search');
    t.equal(parameters.steps, view.progress.totalSteps);
    t.equal(result.ids.length <= 6, true);
    // The response says whether the neuron is in the service's lexical set, and from which sources.
    t.same(lexical, started.json().lexical);
    t.ok(Array.isArray(lexical.sources) && lexical.sources.includes('catalogue'));
    t.same(lexical.targets, lexical.targets.length ? [11] : [], 'the neuron itself, when lexical');
  });
});

async function fetchEvents(app: App, id: string): Promise<Response> {
  const address = app.server.address() as { port: number };
  return fetch(`http://127.0.0.1:${address.port}/v1/jobs/${id}/events`);
}

t.test('an event stream carries keep-alive comments between events (SSE_HEARTBEAT_MS)', async (t) => {
  const app = await buildTestApp({ redisUrl: undefined, sseHeartbeatMs: 40 });
  t.teardown(() => app.close());
  await app.listen({ port: 0, host: '127.0.0.1' });
  // Long enough to outlast a few heartbeats; cancelled once some have arrived.
  const submitted = await app.inject({
    method: 'POST',
    url: '/v1/search/max-text',
    payload: { neuron: 2, steps: 2000, batch: 16, seed: 12 },
  });
  const { jobId } = submitted.json();
  const response = await fetchEvents(app, jobId);
  const decoder = new TextDecoder();
  let text = '';
  let cancelled = false;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
    if (!cancelled && (text.match(/^: keep-alive$/gm) ?? []).length >= 3) {
      cancelled = true;
      await app.inject({ method: 'DELETE', url: `/v1/jobs/${jobId}` });
    }
  }
  const comments = text.match(/^: keep-alive\n\n/gm) ?? [];
  t.ok(comments.length >= 3, `${comments.length} keep-alive comments`);
  const end = text.lastIndexOf('event: cancelled\n');
  t.ok(end > 0, 'the stream still ends with the final event');
  t.notMatch(text.slice(end), /keep-alive/, 'no comment after the final event');
});
