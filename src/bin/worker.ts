/**
 * A job worker process (`npm run worker`): loads the model of MODEL_DIR itself and works the
 * BullMQ maximal-text queue of that model on the Redis at REDIS_URL, WORKER_CONCURRENCY searches at
 * a time. Any number of workers (and servers) share the queue. SIGTERM/SIGINT stop taking jobs,
 * hand running ones back to the queue (they stop at their next step), and exit; a killed worker's
 * job is taken over by another worker once its lock expires.
 */
import { createCache } from '../cache/index.js';
import { ClipModel } from '../clip/clip-model.js';
import { ModelDirectoryError } from '../clip/model-directory.js';
import { ConfigError, loadConfig } from '../config.js';
import { queueName, startBullWorker } from '../jobs/bullmq-backend.js';
import { searchProcessor } from '../jobs/processor.js';
import { workerSettings } from '../jobs/settings.js';

const log = (level: string, obj: object | string, msg?: string) =>
  console.log(
    JSON.stringify({
      level,
      time: Date.now(),
      pid: process.pid,
      ...(typeof obj === 'string' ? { msg: obj } : { ...obj, msg }),
    }),
  );
const logger = {
  info: (obj: object | string, msg?: string) => log('info', obj, msg),
  warn: (obj: object | string, msg?: string) => log('warn', obj, msg),
  error: (obj: object | string, msg?: string) => log('error', obj, msg),
};

async function main(): Promise<void> {
  process.stdout.on('error', () => undefined); // a closed log pipe must not kill a worker mid-job
  const config = loadConfig();
  const settings = workerSettings();
  if (!config.redisUrl)
    throw new ConfigError('the worker needs REDIS_URL (without Redis the server works its own jobs)');
  const model = await ClipModel.load(config.modelDir, { ...config, warn: (message) => logger.warn(message) });
  const cache = createCache({
    redisUrl: config.redisUrl,
    ttlSeconds: config.cacheTtlSeconds,
    maxEntries: config.cacheMaxEntries,
    logger,
  });
  const name = queueName(model.sha256);
  const searchWorker = startBullWorker({
    redisUrl: config.redisUrl,
    name,
    processor: searchProcessor(model, cache),
    concurrency: settings.concurrency,
    lockDurationMs: settings.lockDurationMs,
    onError: (error) => logger.warn({ err: error.message }, 'worker error'),
  });
  const worker = await searchWorker.started;
  worker.on('active', (job) => logger.info({ job: job.id }, 'job started'));
  worker.on('completed', (job) => logger.info({ job: job.id }, 'job finished'));
  worker.on('failed', (job, error) => logger.warn({ job: job?.id, err: error.message }, 'job failed'));
  await worker.waitUntilReady();
  logger.info({ queue: name, concurrency: settings.concurrency, model: model.name }, 'worker ready');
  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'worker shutting down');
    await searchWorker.close();
    logger.info('worker closed; running jobs handed back');
    await cache.close();
    await model.release();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  const known = error instanceof ModelDirectoryError || error instanceof ConfigError;
  console.error(known ? `error: ${error.message}` : error);
  process.exit(1);
});
