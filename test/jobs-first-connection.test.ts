/**
 * A server that starts before its job queue's Redis answers: every call made meanwhile waits for
 * the first connection (up to the command timeout), then answers 503 (JobStoreUnavailable). The
 * calls share one wait: one 'ready' listener, whatever their number (there was one per call, and
 * Node warned of a leak past ten).
 */
import t from 'tap';
import type { Redis } from 'ioredis';
import { freePort } from '../bench/lib/processes.js';
import { BullBackend, JobStoreUnavailable } from '../src/jobs/bullmq-backend.js';

t.test('calls before the first connection share one wait and fail as unavailable', async (t) => {
  const port = await freePort(); // nothing listens there
  const backend = new BullBackend(`redis://127.0.0.1:${port}`, 'first-connection-test');
  t.teardown(() => backend.close());
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(warning.name);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));

  const redis = (backend as unknown as { redis: Redis }).redis;
  const before = redis.listenerCount('ready');
  const calls = Array.from({ length: 25 }, (_, i) => backend.get(`search-${i}`));
  t.equal(redis.listenerCount('ready'), before + 1, 'one listener for 25 waiting calls');
  const outcomes = await Promise.allSettled(calls);
  t.ok(
    outcomes.every((o) => o.status === 'rejected' && o.reason instanceof JobStoreUnavailable),
    'every call answers "unavailable"',
  );
  t.equal(redis.listenerCount('ready'), before, 'the listener is removed once the wait ends');
  await new Promise((resolve) => setImmediate(resolve));
  t.notOk(warnings.includes('MaxListenersExceededWarning'), 'no listener-leak warning');
});
