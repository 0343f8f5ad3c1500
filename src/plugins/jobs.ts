/**
 * app.jobs: the maximal-text search queue (src/jobs/). With REDIS_URL it is a BullMQ queue shared
 * with any `npm run worker` processes, and this server works it too unless WORKER_IN_PROCESS=false;
 * without Redis it is an in-process queue with the same API.
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { Gauge, Histogram, type Registry } from 'prom-client';
import type { Config } from '../config.js';
import { BullBackend, queueName, startBullWorker } from '../jobs/bullmq-backend.js';
import { MemoryBackend } from '../jobs/memory-backend.js';
import { searchProcessor } from '../jobs/processor.js';
import { JobQueue } from '../jobs/queue.js';
import { workerSettings } from '../jobs/settings.js';
import type { JobBackend, JobProcessor } from '../jobs/types.js';

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobQueue;
  }
}

const jobsPlugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const settings = workerSettings();
  const processor = measured(searchProcessor(app.clip, app.cache), app.metrics.registry);
  let backend: JobBackend;
  let closeWorker = async () => {};
  if (config.redisUrl) {
    const name = queueName(app.clip.sha256);
    backend = new BullBackend(config.redisUrl, name);
    if (settings.inProcess) {
      const worker = startBullWorker({
        redisUrl: config.redisUrl,
        name,
        processor,
        concurrency: settings.concurrency,
        lockDurationMs: settings.lockDurationMs,
        onError: (error) => app.log.warn({ err: error }, 'job worker error'),
      });
      closeWorker = () => worker.close();
    }
    app.log.info({ queue: name, inProcessWorker: settings.inProcess }, 'job queue on Redis (BullMQ)');
  } else {
    backend = new MemoryBackend(processor, settings.concurrency);
    app.log.info({ concurrency: settings.concurrency }, 'in-process job queue (no Redis configured)');
  }
  app.decorate('jobs', new JobQueue(backend, app.cache, app.clip.sha256));
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
