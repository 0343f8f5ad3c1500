import t from 'tap';
import { MicroBatcher } from '../src/clip/batcher.js';

const double = async (rows: number[]) => rows.map((row) => row * 2);

t.test('concurrent submissions are merged into one run', async (t) => {
  const sizes: number[] = [];
  const batcher = new MicroBatcher<number, number>({
    maxBatch: 64,
    maxWaitMs: 20,
    run: async (rows) => {
      sizes.push(rows.length);
      return double(rows);
    },
  });
  const results = await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.submit(n)));
  t.same(results, [2, 4, 6, 8, 10]);
  t.same(sizes, [5]);
});

t.test('a batch never exceeds maxBatch and keeps order', async (t) => {
  const sizes: number[] = [];
  const batcher = new MicroBatcher<number, number>({
    maxBatch: 4,
    maxWaitMs: 50,
    run: async (rows) => {
      sizes.push(rows.length);
      return double(rows);
    },
  });
  const inputs = Array.from({ length: 10 }, (_, i) => i);
  t.same(
    await batcher.submitAll(inputs),
    inputs.map((n) => n * 2),
  );
  t.ok(
    sizes.every((size) => size <= 4),
    `sizes ${sizes.join(',')}`,
  );
  t.equal(
    sizes.reduce((a, b) => a + b, 0),
    10,
  );
});

t.test('rows that arrive during a run form the next batch', async (t) => {
  const sizes: number[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const batcher = new MicroBatcher<number, number>({
    maxBatch: 64,
    maxWaitMs: 0,
    run: async (rows) => {
      sizes.push(rows.length);
      if (sizes.length === 1) await gate;
      return double(rows);
    },
  });
  const first = batcher.submit(1);
  await new Promise((resolve) => setImmediate(resolve));
  const later = [2, 3, 4].map((n) => batcher.submit(n));
  t.equal(batcher.depth, 3, 'three rows wait while the first run is busy');
  release();
  t.same(await Promise.all([first, ...later]), [2, 4, 6, 8]);
  t.same(sizes, [1, 3]);
});

t.test('a failed run rejects only its own rows', async (t) => {
  let calls = 0;
  const batcher = new MicroBatcher<number, number>({
    maxBatch: 2,
    maxWaitMs: 0,
    run: async (rows) => {
      calls += 1;
      if (rows.includes(13)) throw new Error('unlucky batch');
      return double(rows);
    },
  });
  const bad = batcher.submitAll([13, 14]);
  const good = batcher.submitAll([1, 2]); // maxBatch 2: a batch of its own
  await t.rejects(bad, /unlucky batch/);
  t.same(await good, [2, 4]);
  t.equal(calls, 2);
});

t.test('a run returning the wrong number of results rejects its rows', async (t) => {
  const batcher = new MicroBatcher<number, number>({ maxBatch: 8, maxWaitMs: 0, run: async () => [1] });
  await t.rejects(batcher.submitAll([1, 2]), /returned 1 results for 2 rows/);
});
