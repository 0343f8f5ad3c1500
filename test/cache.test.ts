/**
 * The vector cache against its real backends: the in-process LRU, the Redis at REDIS_URL (default
 * 127.0.0.1:6379, shared, so this test only touches keys under its own prefix), and throwaway
 * redis-server processes that the test kills, hangs and restarts to play an unreliable Redis.
 */
import t, { type Test } from 'tap';
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort, startRedis as startThrowawayRedis, stopProcess } from '../bench/lib/processes.js';
import { bytesToVector } from '../src/cache/codec.js';
import { cacheKey, cacheKeyPrefix, createCache, type BinaryCache } from '../src/cache/index.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TEST_PREFIX = `mmn-test-${process.pid}-${Date.now()}:`;
const MODEL_A = 'a'.repeat(64);
const MODEL_B = 'b'.repeat(64);
/** Bound for one cache call while Redis is down or hung, as the brief requires. */
const QUICK_MS = 1000;

interface LogCall {
  level: 'info' | 'warn' | 'error';
  obj: object | string;
  msg?: string;
}

function recordingLogger() {
  const calls: LogCall[] = [];
  const record = (level: LogCall['level']) => (obj: object | string, msg?: string) => {
    calls.push({ level, obj, msg });
  };
  const count = (level: LogCall['level']) => calls.filter((call) => call.level === level).length;
  return { info: record('info'), warn: record('warn'), error: record('error'), calls, count };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether the entry `get` reads is gone within 10 s. */
async function expires(get: () => Promise<unknown>): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while ((await get()) !== undefined) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

/** The result of `call` and how long it took, in milliseconds. */
async function timed<T>(call: Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await call;
  return [result, performance.now() - start];
}

/** A throwaway redis-server on 127.0.0.1:port (bench/lib/processes.ts: its own process group). */
async function startRedis(port: number): Promise<ChildProcess> {
  return (await startThrowawayRedis({ port })).child;
}

/** SIGKILL (after SIGCONT, for a hung one), and its exit awaited. */
async function stopRedis(server: ChildProcess): Promise<void> {
  await stopProcess(server, 'SIGKILL');
}

/** Floats whose bits JSON or a sloppy conversion would not preserve. */
function trickyVector(): Float32Array {
  const bits = new Uint32Array([
    0x00000000, // +0
    0x80000000, // -0
    0x00000001, // smallest denormal
    0x807fffff, // largest negative denormal
    0x7fc00000, // canonical NaN
    0x7fc12345, // NaN with a payload
    0xffc00001, // negative NaN with a payload
    0x7f800000, // +Infinity
    0xff800000, // -Infinity
    0x7f7fffff, // largest float
    0x3f800000, // 1
    0x3eaaaaab, // 1/3
  ]);
  return new Float32Array(bits.buffer);
}

const bitsOf = (vector: Float32Array) => [
  ...new Uint32Array(vector.buffer, vector.byteOffset, vector.length),
];

t.test('cacheKey', async (t) => {
  const key = cacheKey(MODEL_A, 'embed-text', 'a dog', 3);
  t.equal(key, cacheKey(MODEL_A.toUpperCase(), 'embed-text', 'a dog', 3), 'stable; hash case ignored');
  t.ok(key.startsWith(cacheKeyPrefix(MODEL_A, 'embed-text')), 'under its operation prefix');
  t.ok(key.startsWith(cacheKeyPrefix(MODEL_A)), 'under its model prefix');
  t.ok(key.includes(MODEL_A), 'carries the model hash');
  t.not(key, cacheKey(MODEL_B, 'embed-text', 'a dog', 3), 'models never collide');
  t.not(key, cacheKey(MODEL_A, 'embed-image', 'a dog', 3), 'operations never collide');
  t.not(cacheKey(MODEL_A, 'op', 'a:b'), cacheKey(MODEL_A, 'op', 'a', 'b'), 'separators inside parts');
  t.not(cacheKey(MODEL_A, 'op', ''), cacheKey(MODEL_A, 'op'), 'an empty part counts');
  t.equal(cacheKey(MODEL_A, 'op', 'neuron-12', 7), `${MODEL_A}:op:neuron-12:7`, 'short parts stay readable');
  const long = cacheKey(MODEL_A, 'op', 'x'.repeat(10_000), 'été');
  t.ok(long.length < 200, 'long parts are hashed');
  t.match(long, /^[A-Za-z0-9:#._-]+$/, 'only safe characters');
  t.not(long, cacheKey(MODEL_A, 'op', 'x'.repeat(10_001), 'été'));
  t.throws(() => cacheKey('not-a-sha', 'op'), TypeError);
  t.throws(() => cacheKey(MODEL_A, 'bad op'), TypeError);
});

t.test('vector codec builds aligned Float32Arrays from any Buffer', async (t) => {
  const vector = trickyVector();
  const raw = Buffer.from(vector.buffer);
  for (const offset of [1, 2, 3, 4]) {
    const backing = Buffer.alloc(raw.length + 8);
    raw.copy(backing, offset);
    const decoded = bytesToVector(backing.subarray(offset, offset + raw.length));
    t.same(bitsOf(decoded!), bitsOf(vector), `byteOffset ${offset}`);
  }
  t.equal(bytesToVector(Buffer.alloc(7)), undefined, 'a length that is not a multiple of 4');
});

t.test('memory backend', async (t) => {
  const logger = recordingLogger();
  const options = { ttlSeconds: 60, maxEntries: 3, maxBytes: 1 << 20, logger };
  const cache = createCache(options);
  t.teardown(() => cache.close());
  t.same(cache.status(), { backend: 'memory', ok: true });
  t.equal(cache.backend, 'memory');

  t.test('round-trips, bit-exact, copied in and out', async (t) => {
    const vector = trickyVector();
    await cache.setVector('v', vector);
    vector[0] = 42;
    const got = await cache.getVector('v');
    t.same(bitsOf(got!), bitsOf(trickyVector()));
    got![1] = 42;
    t.same(bitsOf((await cache.getVector('v'))!), bitsOf(trickyVector()));
    await cache.setBuffer('b', Buffer.from([0, 255, 1]));
    t.same(await cache.getBuffer('b'), Buffer.from([0, 255, 1]));
    await cache.setJson('j', { words: ['dog'], score: 0.5 });
    t.same(await cache.getJson('j'), { words: ['dog'], score: 0.5 });
    t.equal(await cache.getVector('missing'), undefined);
    await t.rejects(cache.setJson('j', undefined), TypeError);
    await cache.delete('v');
    t.equal(await cache.getVector('v'), undefined);
  });

  t.test('honours the default and per-entry TTL', async (t) => {
    const shortLived = createCache({ ...options, ttlSeconds: 0.2 });
    await shortLived.setJson('default', 1);
    await shortLived.setJson('long', 2, 60);
    await cache.setJson('short', 3, 0.05);
    t.ok(await expires(() => shortLived.getJson('default')), 'the default TTL');
    t.ok(await expires(() => cache.getJson('short')), 'a per-entry TTL');
    t.equal(await shortLived.getJson('long'), 2, 'a longer per-entry TTL wins');
    await t.rejects(cache.setJson('k', 1, 0), RangeError);
  });

  t.test('evicts the least recently used entry beyond maxEntries', async (t) => {
    await cache.flush();
    for (const key of ['1', '2', '3']) await cache.setJson(key, key);
    await cache.getJson('1');
    await cache.setJson('4', '4');
    t.same(await Promise.all(['1', '2', '3', '4'].map((key) => cache.getJson(key))), [
      '1',
      undefined,
      '3',
      '4',
    ]);
  });

  t.test('evicts beyond maxBytes and never stores an entry larger than that', async (t) => {
    const small = createCache({ ttlSeconds: 60, maxBytes: 10_000, logger });
    const vector = new Float32Array(1000); // 4000 bytes
    for (const key of ['a', 'b', 'c']) await small.setVector(key, vector);
    t.equal(await small.getVector('a'), undefined, 'the oldest went');
    t.ok(await small.getVector('b'));
    t.ok(await small.getVector('c'));
    await small.setVector('huge', new Float32Array(3000));
    t.equal(await small.getVector('huge'), undefined);
    t.ok(await small.getVector('c'), 'and it evicted nothing');
  });

  t.test('flush deletes by prefix and counts', async (t) => {
    await cache.flush();
    await cache.setJson(cacheKey(MODEL_A, 'op', 1), 1);
    await cache.setJson(cacheKey(MODEL_A, 'op', 2), 2);
    await cache.setJson(cacheKey(MODEL_B, 'op', 1), 3);
    t.equal(await cache.flush(cacheKeyPrefix(MODEL_A)), 2);
    t.equal(await cache.getJson(cacheKey(MODEL_B, 'op', 1)), 3);
    t.equal(await cache.flush(), 1);
  });
});

t.test('Redis backend', async (t) => {
  const logger = recordingLogger();
  const cache = createCache({ redisUrl: REDIS_URL, ttlSeconds: 60, keyPrefix: TEST_PREFIX, logger });
  const raw = new Redis(REDIS_URL);
  t.teardown(async () => {
    await cache.flush();
    await cache.close();
    raw.disconnect();
  });
  await waitFor(() => cache.status().ok, 'the Redis connection');
  t.same(cache.status(), { backend: 'redis', ok: true });
  t.equal(logger.count('warn'), 0);

  t.test('stores a Float32Array as raw little-endian bytes, bit-exact', async (t) => {
    const key = cacheKey(MODEL_A, 'embed', 'tricky');
    await cache.setVector(key, trickyVector());
    const stored = await raw.getBuffer(TEST_PREFIX + key);
    t.same(stored, Buffer.from(trickyVector().buffer), 'the raw bytes, not JSON');
    t.same(stored!.subarray(40, 44), Buffer.from([0x00, 0x00, 0x80, 0x3f]), '1.0, little-endian');
    const got = await cache.getVector(key);
    t.type(got, Float32Array);
    t.same(bitsOf(got!), bitsOf(trickyVector()));
  });

  t.test('stores only the elements of a Float32Array view', async (t) => {
    const backing = new Float32Array([9, 9, ...trickyVector(), 9]);
    const view = backing.subarray(2, 2 + trickyVector().length);
    await cache.setVector('view', view);
    t.same(bitsOf((await cache.getVector('view'))!), bitsOf(view));
    const big = new Float32Array(100_000).map((_, i) => Math.sin(i));
    await cache.setVector('big', big.subarray(1));
    t.same(bitsOf((await cache.getVector('big'))!), bitsOf(big.subarray(1)), 'a multi-chunk reply');
  });

  t.test('round-trips buffers and JSON', async (t) => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await cache.setBuffer('bytes', bytes);
    t.same(await cache.getBuffer('bytes'), bytes);
    await cache.setBuffer('empty', Buffer.alloc(0));
    t.same(await cache.getBuffer('empty'), Buffer.alloc(0));
    const result = { neurons: [{ id: 89, score: -0.25 }], text: 'un chien 🐕' };
    await cache.setJson('json', result);
    t.same(await cache.getJson('json'), result);
    t.equal(await cache.getJson('missing'), undefined);
    await cache.delete('json');
    t.equal(await cache.getJson('json'), undefined);
  });

  t.test('treats a value it cannot decode as a miss', async (t) => {
    await raw.set(TEST_PREFIX + 'odd', 'abc');
    t.equal(await cache.getVector('odd'), undefined, 'not a whole number of floats');
    t.equal(await cache.getJson('odd'), undefined, 'not JSON');
    t.equal(logger.count('warn'), 2);
  });

  t.test('honours the default and per-entry TTL', async (t) => {
    await cache.setJson('default', 1);
    const pttl = await raw.pttl(TEST_PREFIX + 'default');
    t.ok(pttl > 50_000 && pttl <= 60_000, `default TTL applied (${pttl} ms)`);
    await cache.setJson('short', 2, 0.2);
    t.ok(await expires(() => cache.getJson('short')), 'expired');
  });

  t.test('flush only touches its own prefix', async (t) => {
    const neighbour = `${TEST_PREFIX.slice(0, -1)}-other:k`;
    const starry = `${TEST_PREFIX}*x`; // glob characters in our own keys are taken literally
    await raw.set(neighbour, 'theirs');
    t.teardown(() => raw.unlink(neighbour));
    await cache.flush();
    await cache.setJson(cacheKey(MODEL_A, 'op', 1), 1);
    await cache.setJson(cacheKey(MODEL_A, 'op', 2), 2);
    await cache.setJson(cacheKey(MODEL_B, 'op', 1), 3);
    await cache.setJson('*x', 4);
    t.equal(await cache.flush(cacheKeyPrefix(MODEL_A)), 2);
    t.equal(await cache.getJson(cacheKey(MODEL_B, 'op', 1)), 3);
    t.equal(await cache.flush('*'), 1, 'a literal *');
    t.equal(await raw.exists(starry), 0);
    t.equal(await cache.flush(), 1);
    t.equal(await raw.get(neighbour), 'theirs');
  });
});

/** Every call of the cache resolves within QUICK_MS, as a bypassed cache does: gets miss. */
async function assertBypassed(t: Test, cache: BinaryCache): Promise<void> {
  const calls: [string, () => Promise<unknown>, unknown][] = [
    ['getVector', () => cache.getVector('v'), undefined],
    ['setVector', () => cache.setVector('v', new Float32Array(512)), undefined],
    ['getBuffer', () => cache.getBuffer('b'), undefined],
    ['setBuffer', () => cache.setBuffer('b', Buffer.from('x')), undefined],
    ['getJson', () => cache.getJson('j'), undefined],
    ['setJson', () => cache.setJson('j', { a: 1 }), undefined],
    ['delete', () => cache.delete('v'), undefined],
    ['flush', () => cache.flush(), 0],
  ];
  for (const [name, call, expected] of calls) {
    const [result, ms] = await timed(call());
    t.equal(result, expected, `${name} bypassed`);
    t.ok(ms < QUICK_MS, `${name} resolved in ${ms.toFixed(0)} ms`);
  }
}

t.test('Redis going away and coming back', async (t) => {
  const port = await freePort();
  let server = await startRedis(port);
  t.teardown(() => stopRedis(server));
  const logger = recordingLogger();
  const cache = createCache({ redisUrl: `redis://127.0.0.1:${port}`, ttlSeconds: 60, logger });
  t.teardown(() => cache.close());
  await waitFor(() => cache.status().ok, 'the first connection');
  await cache.setVector('v', trickyVector());
  t.same(bitsOf((await cache.getVector('v'))!), bitsOf(trickyVector()));

  await stopRedis(server);
  await assertBypassed(t, cache);
  await waitFor(() => !cache.status().ok, 'the loss to show in status()');
  t.same(cache.status(), { backend: 'redis', ok: false });
  await waitFor(() => logger.count('warn') > 0, 'the warning');
  await sleep(2500); // several reconnection attempts
  await assertBypassed(t, cache);
  t.equal(logger.count('warn'), 1, 'the loss is logged once');
  t.equal(logger.count('error'), 0);

  const infosBefore = logger.count('info');
  server = await startRedis(port);
  await waitFor(() => cache.status().ok, 'the reconnection');
  t.equal(logger.count('info'), infosBefore + 1, 'the recovery is logged once');
  t.equal(await cache.getVector('v'), undefined, 'the old server took its data with it');
  await cache.setVector('v', trickyVector());
  t.same(bitsOf((await cache.getVector('v'))!), bitsOf(trickyVector()), 'round-trips after recovery');
  await cache.setJson('j', { back: true });
  t.same(await cache.getJson('j'), { back: true });
  t.equal(logger.count('warn'), 1);
});

t.test('Redis hanging (SIGSTOP) is treated as gone', async (t) => {
  const port = await freePort();
  const server = await startRedis(port);
  t.teardown(() => stopRedis(server));
  const logger = recordingLogger();
  const cache = createCache({ redisUrl: `redis://127.0.0.1:${port}`, ttlSeconds: 60, logger });
  t.teardown(() => cache.close());
  await waitFor(() => cache.status().ok, 'the first connection');

  server.kill('SIGSTOP');
  await assertBypassed(t, cache);
  await waitFor(() => !cache.status().ok, 'timeouts to count as a loss');
  t.equal(logger.count('warn'), 1, 'the loss is logged once');
  await assertBypassed(t, cache);

  server.kill('SIGCONT');
  await waitFor(() => cache.status().ok, 'the reconnection');
  await cache.setJson('j', 1);
  t.equal(await cache.getJson('j'), 1);
  t.equal(logger.count('warn'), 1);
});

t.test('Redis unreachable at start', async (t) => {
  const port = await freePort(); // nothing listens there
  const logger = recordingLogger();
  const cache = createCache({ redisUrl: `redis://127.0.0.1:${port}`, ttlSeconds: 60, logger });
  t.same(cache.status(), { backend: 'redis', ok: false });
  await assertBypassed(t, cache);
  await waitFor(() => logger.count('warn') > 0, 'the warning');
  await sleep(1000);
  await assertBypassed(t, cache);
  t.equal(logger.count('warn'), 1, 'logged once');
  t.same(cache.status(), { backend: 'redis', ok: false });
  const [, ms] = await timed(cache.close());
  t.ok(ms < QUICK_MS, 'close resolves');
});
