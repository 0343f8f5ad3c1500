/**
 * Property-based requests generated from the OpenAPI document (openapi/openapi.json, plus any
 * operation the live app documents that the checked-in file lacks) against every route: schema-valid
 * and schema-breaking bodies, queries and path parameters, hostile strings, prototype-pollution keys,
 * nested junk, small valid PNGs and garbage images. No answer may be a 5xx, errors keep their
 * {statusCode, error, message} shape without stacks or paths, and the process survives.
 *
 * Bounded for CI: FUZZ_RUNS runs per route (default 60): the first 10 whatever they take, the rest
 * within FUZZ_ROUTE_MS per route (default 2500 ms), so a loaded machine runs fewer but never fewer than
 * 10; FUZZ_SEED replays a run.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import sharp from 'sharp';
import t from 'tap';
import { buildTestApp } from './helpers/app.js';
import {
  operations,
  requestArbitrary,
  type FuzzRequest,
  type OpenApiDocument,
} from './helpers/openapi-arbitraries.js';
import { repoRoot } from './helpers/tiny-model.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
const ROUTE_MS = Number(process.env.FUZZ_ROUTE_MS ?? 2500);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;

// Multinomial fits with a tiny λ would use their whole work budget (FIT_MAX_SWEEPS, 2,000 sweeps
// by default); here they stop after 20 sweeps, reporting converged: false.
const app = await buildTestApp({ fitMaxSweeps: 20 });
t.teardown(() => app.close());

const checkedIn = JSON.parse(
  readFileSync(path.join(repoRoot, 'openapi/openapi.json'), 'utf8'),
) as OpenApiDocument;
const live = app.swagger() as unknown as OpenApiDocument;
const fileOps = operations(checkedIn);
const key = (op: { method: string; path: string }) => `${op.method} ${op.path}`;
const known = new Set(fileOps.map(key));
const liveOnly = operations(live).filter((op) => !known.has(key(op)));
const ops = [...fileOps.map((op) => ({ op, doc: checkedIn })), ...liveOnly.map((op) => ({ op, doc: live }))];
if (liveOnly.length > 0) {
  t.comment(`openapi/openapi.json lacks ${liveOnly.map(key).join(', ')} (fuzzed from the live document)`);
}

const validPngs = await Promise.all(
  [
    { width: 1, height: 1, channels: 3 as const },
    { width: 64, height: 64, channels: 4 as const },
    { width: 97, height: 13, channels: 3 as const },
    { width: 20, height: 300, channels: 4 as const },
  ].map((create, i) =>
    sharp({ create: { ...create, background: { r: 40 * i, g: 200, b: 255 - 50 * i, alpha: 0.5 } } })
      .png()
      .toBuffer(),
  ),
);
validPngs.push(
  await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .jpeg()
    .toBuffer(),
);

const LEAK = /\/work\/|\/home\/|node_modules|\bat [\w.<>]+ \(|\.ts:\d+|\.js:\d+|stack/;

// Routes without inputs that compute on first use (the emotion atlas…) are warmed up first, so that
// their time budget goes to fuzzing.
for (const { op } of ops) {
  if (op.method === 'GET' && op.parameters.every((p) => !p.required) && !op.path.includes('{')) {
    await app.inject(op.path);
  }
}

t.comment(`fuzz seed ${SEED}: ${RUNS} runs per route, at most ${ROUTE_MS} ms each, ${ops.length} routes`);
// The default composition and its atlases are computed once, before the clock of any route starts:
// a cold atlas takes seconds of fitting on a loaded machine, which is not what the fuzz measures.
for (const url of ['/v1/emotions', '/v1/emotions/atlas?factors=2', '/v1/emotions/atlas?factors=7']) {
  const warm = await app.inject({ method: 'GET', url });
  if (warm.statusCode !== 200) throw new Error(`${url}: ${warm.statusCode} ${warm.body.slice(0, 300)}`);
}
const started = Date.now();

for (const { op, doc } of ops) {
  t.test(`${op.method} ${op.path}`, async (t) => {
    const statuses = new Map<string, number>();
    let runs = 0;
    const arbitrary = requestArbitrary(op, { doc, validPngs });
    const property = fc.asyncProperty(arbitrary, async (request: FuzzRequest) => {
      runs += 1;
      const res = await app.inject({
        method: request.method as 'GET',
        url: request.url,
        headers: request.headers,
        payload: request.payload,
      });
      const tag = `${request.kind}:${res.statusCode}`;
      statuses.set(tag, (statuses.get(tag) ?? 0) + 1);
      if (res.statusCode >= 500) {
        throw new Error(
          `${res.statusCode} for ${request.kind} ${request.method} ${request.url.slice(0, 300)}: ${res.body.slice(0, 500)}`,
        );
      }
      if (res.statusCode >= 400) {
        const body = res.json() as Record<string, unknown>;
        if (
          Object.keys(body).sort().join() !== 'error,message,statusCode' ||
          body.statusCode !== res.statusCode
        ) {
          throw new Error(`error shape for ${request.url.slice(0, 200)}: ${res.body.slice(0, 300)}`);
        }
        if (LEAK.test(String(body.message)))
          throw new Error(`leaky message: ${String(body.message).slice(0, 300)}`);
      }
      // A queued search is cancelled at once: the fuzz must not leave the CPU to background jobs.
      if (res.statusCode === 202 && /jobId/.test(res.body)) {
        const { jobId } = res.json() as { jobId: string };
        await app.inject({ method: 'DELETE', url: `/v1/jobs/${jobId}` });
      }
      if (Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'))
        throw new Error('Object.prototype polluted');
    });
    const floor = Math.min(RUNS, 10);
    const first = await fc.check(property, { numRuns: floor, seed: SEED, endOnFailure: true });
    const details =
      first.failed || RUNS === floor
        ? first
        : await fc.check(property, {
            numRuns: RUNS - floor,
            seed: SEED + 1,
            interruptAfterTimeLimit: ROUTE_MS,
            markInterruptAsFailure: false,
            endOnFailure: true,
          });
    if (details.failed) {
      const example = JSON.stringify(details.counterexample, (_key, value: unknown) =>
        typeof value === 'string' && value.length > 300
          ? `${value.slice(0, 300)}…(${value.length} chars)`
          : value,
      );
      const error =
        details.errorInstance instanceof Error
          ? details.errorInstance.message
          : String(details.errorInstance);
      t.fail(
        `${error.slice(0, 600)}\nseed ${details.seed}, path ${details.counterexamplePath}: ${example.slice(0, 1500)}`,
      );
    }
    const summary = [...statuses.entries()].sort().map(([tag, n]) => `${tag}×${n}`);
    t.ok(runs >= Math.min(RUNS, 10), `${runs} requests: ${summary.join(' ')}`);
  });
}

t.test('the service is still whole', async (t) => {
  t.equal((await app.inject('/health')).statusCode, 200);
  const res = await app.inject({
    method: 'POST',
    url: '/v1/embed/text',
    payload: { texts: ['still alive'] },
  });
  t.equal(res.statusCode, 200);
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
  t.equal(Object.getOwnPropertyNames(Object.prototype).includes('isAdmin'), false);
  t.comment(`fuzzed for ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
