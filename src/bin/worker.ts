/**
 * A job worker process (`npm run worker`): loads the model of MODEL_DIR itself and works the
 * BullMQ queues of that model on the Redis at REDIS_URL: maximal-text searches, WORKER_CONCURRENCY
 * at a time, and collection builds and their shards (WORKER_COLLECTION_CONCURRENCY at a time; the
 * collections are under DATA_DIR, which the worker must share with the servers) and large
 * typographic attacks and the whole-model neuron labelling and its shards (src/evidence/), on the same lane. Any number of
 * workers (and servers) share the queues. SIGTERM/SIGINT stop taking jobs, hand running ones back
 * to the queue (they stop at their next step or batch), and exit; a killed worker's job is taken
 * over by another worker once its lock expires.
 */
import { createCache } from '../cache/index.js';
import { ClipModel } from '../clip/clip-model.js';
import { boundedDecode } from '../clip/encoders.js';
import { Semaphore } from '../clip/semaphore.js';
import { ModelDirectoryError } from '../clip/model-directory.js';
import { ConfigError, loadConfig } from '../config.js';
import { CollectionBuilds, shardSizeOf } from '../collections/build-job.js';
import { loadCollectionSettings } from '../collections/settings.js';
import { CollectionStore } from '../collections/store.js';
import { queueNames, startBullWorker } from '../jobs/bullmq-backend.js';
import { searchProcessor } from '../jobs/processor.js';
import { JobRegistry } from '../jobs/registry.js';
import { workerSettings } from '../jobs/settings.js';
import { JOB_LANES } from '../jobs/types.js';
import { typographicForWorker } from '../typographic/worker.js';
import { labelsForWorker } from '../evidence/worker.js';

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
  const { manifest } = model.directory;
  const store = new CollectionStore(config.dataDir);
  const builds = new CollectionBuilds({
    store,
    model,
    spec: { imageSize: manifest.image_size, mean: manifest.mean, std: manifest.std },
    // The worker's one decode bound (IMAGE_DECODE_CONCURRENCY), as the server's image routes have.
    decode: boundedDecode(new Semaphore(config.imageDecodeConcurrency), config.maxImagePixels),
    batchSize: loadCollectionSettings().batchSize,
    shardSize: shardSizeOf(),
    log: logger,
  });
  const registry = new JobRegistry();
  registry.register(
    'max-text',
    searchProcessor(model, cache, { dataDir: config.dataDir, warn: (message) => logger.warn(message) }),
  );
  registry.register('collection-build', builds.buildProcessor);
  registry.register('collection-shard', builds.shardProcessor);
  registry.register('typographic-attack', await typographicForWorker(model, cache, config, store));
  // The whole-model labelling and its shards (src/evidence/label-job.ts): the word index is loaded,
  // never built here, and the catalogue is written under the shared DATA_DIR.
  const labels = await labelsForWorker(model, cache, config, logger);
  registry.register('neuron-labels', labels.jobs.jobProcessor);
  registry.register('neuron-labels-shard', labels.jobs.shardProcessor);
  const names = queueNames(model.sha256);
  const workers = JOB_LANES.map((lane) =>
    startBullWorker({
      redisUrl: config.redisUrl!,
      name: names[lane],
      processor: registry.dispatch,
      concurrency: lane === 'search' ? settings.concurrency : settings.collectionConcurrency,
      lockDurationMs: settings.lockDurationMs,
      onError: (error) => logger.warn({ err: error.message, lane }, 'worker error'),
    }),
  );
  for (const started of workers) {
    const worker = await started.started;
    worker.on('active', (job) => logger.info({ job: job.id, kind: job.name }, 'job started'));
    worker.on('completed', (job) =>
      logger.info({ job: job.id, kind: job.name, result: summary(job.returnvalue) }, 'job finished'),
    );
    worker.on('failed', (job, error) =>
      logger.warn({ job: job?.id, kind: job?.name, err: error.message }, 'job failed'),
    );
    await worker.waitUntilReady();
  }
  logger.info(
    {
      queues: names,
      concurrency: settings.concurrency,
      collectionConcurrency: settings.collectionConcurrency,
      model: model.name,
    },
    'worker ready',
  );
  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'worker shutting down');
    await labels.jobs.stop(); // labelling work stops between neurons and is handed back
    await Promise.all(workers.map((worker) => worker.close()));
    await labels.close();
    logger.info('worker closed; running jobs handed back');
    await cache.close();
    await model.release();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

/** What a finished job's log line says of its result: a shard's or a build's counts, not a search's texts. */
function summary(outcome: unknown): unknown {
  const result = (outcome as { result?: unknown } | undefined)?.result;
  if (typeof result !== 'object' || result === null) return undefined;
  return 'computed' in result || 'collection' in result ? result : undefined;
}

main().catch((error: unknown) => {
  const known = error instanceof ModelDirectoryError || error instanceof ConfigError;
  console.error(known ? `error: ${error.message}` : error);
  process.exit(1);
});
