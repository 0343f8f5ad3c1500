/**
 * app.jobs: the one job queue (src/jobs/): maximal-text searches, and the kinds that other plugins
 * register in app.jobs.registry (collection builds and their shards: plugins/collections.ts). With
 * REDIS_URL it is BullMQ, a queue per lane shared with any `npm run worker` processes, and this
 * server works every lane too unless WORKER_IN_PROCESS=false (its workers start once the app is
 * ready, when every kind is registered); without Redis it is an in-process queue with the same API. app.jobClient(request) says who asks:
 * the owner of the jobs it submits (its valid API key, else its address) and whether it is an admin.
 */
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Gauge, Histogram, type Registry } from 'prom-client';
import type { Config } from '../config.js';
import { BullBackend, queueNames, startBullWorker } from '../jobs/bullmq-backend.js';
import { MemoryBackend } from '../jobs/memory-backend.js';
import { searchProcessor } from '../jobs/processor.js';
import { JobQueue, type JobClient } from '../jobs/queue.js';
import { JobRegistry } from '../jobs/registry.js';
import { keyMatches } from './security.js';
import { workerSettings } from '../jobs/settings.js';
import { JOB_LANES, type JobBackend, type JobProcessor } from '../jobs/types.js';

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobQueue;
    /** Who asks, for job ownership: a valid key's digest, else the client address; admin or not. */
    jobClient(request: FastifyRequest): JobClient;
  }
}

const digest = (key: string) => createHash('sha256').update(key).digest();

/** The bearer token of a request, if any. */
function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const [scheme, token] = header.split(' ', 2);
  return scheme?.toLowerCase() === 'bearer' && token ? token.trim() : undefined;
}

const jobsPlugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const settings = workerSettings();
  const registry = new JobRegistry();
  registry.register(
    'max-text',
    searchProcessor(app.clip, app.cache, {
      dataDir: config.dataDir,
      warn: (message) => app.log.warn(message),
    }),
  );
  const processor = measured(registry.dispatch, app.metrics.registry);
  let backend: JobBackend;
  let closeWorker = async () => {};
  if (config.redisUrl) {
    const redisUrl = config.redisUrl;
    const names = queueNames(app.clip.sha256);
    backend = new BullBackend(redisUrl, names.search, names);
    if (settings.inProcess) {
      // Started once every plugin has registered its kinds: a job taken before would fail.
      app.addHook('onReady', async () => {
        const workers = JOB_LANES.map((lane) =>
          startBullWorker({
            redisUrl,
            name: names[lane],
            processor,
            concurrency: lane === 'search' ? settings.concurrency : settings.collectionConcurrency,
            lockDurationMs: settings.lockDurationMs,
            onError: (error) => app.log.warn({ err: error, lane }, 'job worker error'),
          }),
        );
        closeWorker = async () => {
          await Promise.all(workers.map((worker) => worker.close()));
        };
      });
    }
    app.log.info({ queues: names, inProcessWorker: settings.inProcess }, 'job queue on Redis (BullMQ)');
  } else {
    backend = new MemoryBackend(processor, settings.concurrency, 1000, {
      collections: settings.collectionConcurrency,
    });
    app.log.info({ concurrency: settings.concurrency }, 'in-process job queue (no Redis configured)');
  }
  app.decorate(
    'jobs',
    new JobQueue(
      backend,
      app.cache,
      app.clip.sha256,
      { maxJobsPerOwner: settings.maxJobsPerOwner, maxQueuedJobs: settings.maxQueuedJobs },
      registry,
    ),
  );
  const apiKeys = config.apiKeys.map(digest);
  const adminKeys = config.adminApiKeys.map(digest);
  // A made-up key (the service open, or a route that lets it through) owns nothing: the address does.
  app.decorate('jobClient', (request: FastifyRequest): JobClient => {
    const token = bearer(request);
    if (token !== undefined) {
      const admin = keyMatches(token, adminKeys);
      if (admin || keyMatches(token, apiKeys)) {
        return { owner: `key:${digest(token).toString('hex').slice(0, 32)}`, admin };
      }
    }
    return { owner: `ip:${request.ip}`, admin: false };
  });
  const queued = backend;
  new Gauge({
    name: 'jobs_queue_depth',
    help: 'Search jobs queued and not yet started',
    registers: [app.metrics.registry],
    async collect() {
      this.set(await queued.waitingCount());
    },
  });
  app.addHook('onClose', async () => {
    await closeWorker();
    await backend.close();
  });
};

export default fp(jobsPlugin, { name: 'jobs', dependencies: ['metrics', 'model', 'cache'] });

/** Jobs running in this process (a gauge) and how long each took, by outcome (a histogram). */
function measured(processor: JobProcessor, registry: Registry): JobProcessor {
  const running = new Gauge({
    name: 'jobs_running',
    help: 'Search jobs running in this process',
    registers: [registry],
  });
  const seconds = new Histogram({
    name: 'job_duration_seconds',
    help: 'Search job durations by outcome',
    labelNames: ['outcome'],
    buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers: [registry],
  });
  for (const outcome of ['completed', 'failed']) seconds.zero({ outcome });
  return async (data, context) => {
    running.inc();
    const stop = seconds.startTimer();
    try {
      const outcome = await processor(data, context);
      stop({ outcome: 'completed' });
      return outcome;
    } catch (error) {
      stop({ outcome: 'failed' });
      throw error;
    } finally {
      running.dec();
    }
  };
}
