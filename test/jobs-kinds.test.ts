/**
 * Job kinds without a model (fast): the in-process backend runs each lane on its own (a long
 * collection build does not hold up a search), a kind this process has not registered fails with a
 * message naming it, submitJob shares one job per hash and keeps a resumed build's id, a stop runs
 * the kind's hook, and a build's cancel by a client that does not follow it is a 403 naming who may.
 * Also the shard file of a build (builder.ts) read back equals what was written, for sizes where the
 * argmax block needs padding.
 */
import t from 'tap';
import { createCache } from '../src/cache/index.js';
import { decodeShard, encodeShard, type ShardOutput } from '../src/collections/builder.js';
import { MemoryBackend } from '../src/jobs/memory-backend.js';
import { JobQueue } from '../src/jobs/queue.js';
import { JobRegistry } from '../src/jobs/registry.js';
import type { JobView } from '../src/jobs/types.js';

const quiet = { warn: () => undefined, info: () => undefined, error: () => undefined } as never;

async function until<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function setup() {
  const registry = new JobRegistry();
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  registry.register('collection-build', async (data, context) => {
    await context.reportProgress({
      collection: data.collection,
      done: 1,
      total: 2,
      indexed: 1,
      skipped: [],
      duplicates: 0,
      imagesPerSecond: null,
      shards: { total: 2, committed: 1, running: 1 },
    });
    await held;
    return {
      cancelled: await context.isCancelled(),
      result: {
        collection: data.collection,
        images: 2,
        done: 2,
        skipped: 0,
        duplicates: 0,
        workers: ['here'],
      },
    };
  });
  const backend = new MemoryBackend(registry.dispatch, 1);
  const queue = new JobQueue(
    backend,
    createCache({ ttlSeconds: 60, logger: quiet }),
    'sha',
    undefined,
    registry,
  );
  return { queue, backend, release };
}

const build = (collection: string) =>
  ({ kind: 'collection-build', collection, hash: `collection-build:${collection}` }) as const;

t.test('lanes, dedup by hash, a resumed id, and the stop hook', async (t) => {
  const { queue, backend, release } = setup();
  t.teardown(async () => {
    release();
    await queue.close();
  });
  const first = await queue.submitJob(build('a'), 'ip:owner', 'build-before-restart');
  t.equal(first.jobId, 'build-before-restart', 'an unknown id with the kind’s prefix is kept');
  const again = await queue.submitJob(build('a'), 'ip:other');
  t.match(again, { jobId: first.jobId, deduplicated: true }, 'the same collection shares the job');
  const other = await queue.submitJob(build('b'), 'ip:owner', 'not-a-build-id');
  t.match(other.jobId, /^build-[0-9a-f-]{36}$/, 'an id without the prefix is not taken');
  const running = await until(async () => {
    const view = await queue.get(first.jobId);
    return view?.state === 'running' && 'indexed' in view.progress ? view : undefined;
  }, 'the build to report');
  t.match(running, { kind: 'collection-build', progress: { collection: 'a', done: 1, total: 2 } });

  // The search lane is free while builds hold theirs: a job of an unregistered kind runs (and fails).
  const search = await backend.add('search-1', {
    request: { steps: 1 } as never,
    hash: 'h',
  });
  const failed = await until(async () => {
    const view = await queue.get(search);
    return view?.state === 'failed' ? view : undefined;
  }, 'the search to run');
  t.match(failed, { kind: 'max-text', error: 'this process does not run jobs of kind max-text' });

  const forbidden = queue.cancel(first.jobId, { owner: 'ip:stranger', admin: false });
  await t.rejects(forbidden, { statusCode: 403, message: /only the collection's owner \(or an admin key\)/ });
  const stopped: JobView[] = [];
  queue.whenStopped('collection-build', async (view) => void stopped.push(view));
  await queue.cancel(first.jobId, { owner: 'ip:other', admin: false });
  t.equal(stopped.length, 0, 'one of two followers detached: the build runs on');
  const cancelled = await queue.cancel(first.jobId, { owner: 'ip:owner', admin: false });
  t.match(cancelled, { stopped: true, view: { state: 'cancelled' } });
  t.equal(stopped.length, 1, 'the last follower stopped it, and the hook ran');
  t.equal(stopped[0].id, first.jobId);
  release();
  const b = await until(async () => {
    const view = await queue.get(other.jobId);
    return view?.state === 'completed' ? view : undefined;
  }, 'build b');
  t.match(b.result, { collection: 'b', images: 2 });
});

t.test('a shard file reads back as written', async (t) => {
  for (const [C, D, k] of [
    [3, 2, 3],
    [4, 5, 2],
    [7, 1, 0],
  ]) {
    const output: ShardOutput = {
      items: [
        ...Array.from({ length: k }, (_, i) => ({
          kind: 'image' as const,
          entry: {
            name: `${i}.png`,
            category: i % 2 ? 'odd' : null,
            caption: null,
            sha256: `${i}`,
            bytes: 10 + i,
          },
          width: 64,
          height: 48 + i,
          thumbBytes: i + 1,
        })),
        {
          kind: 'skipped',
          entry: { name: 'x.txt', category: null, caption: null, sha256: 'x', bytes: 1 },
          reason: 'no',
        },
      ],
      means: Float32Array.from({ length: k * C }, (_, i) => i / 7 - 1),
      maxima: Float32Array.from({ length: k * C }, (_, i) => Math.sqrt(i)),
      argmax: Uint16Array.from({ length: k * C }, (_, i) => (i * 37) % 65536),
      embeddings: Float32Array.from({ length: k * D }, (_, i) => -i * 1e-3),
      thumbs: Buffer.from(Array.from({ length: (k * (k + 1)) / 2 }, (_, i) => i)),
      computedBy: '1@host',
    };
    const back = decodeShard(encodeShard(output), C, D);
    t.same(back.items, output.items, `C ${C}, D ${D}, ${k} images: items`);
    t.same([...back.means], [...output.means], 'means');
    t.same([...back.maxima], [...output.maxima], 'maxima');
    t.same([...back.argmax], [...output.argmax], 'argmax');
    t.same([...back.embeddings], [...output.embeddings], 'embeddings');
    t.ok(back.thumbs.equals(output.thumbs), 'thumbnails');
    t.equal(back.computedBy, '1@host');
  }
});
