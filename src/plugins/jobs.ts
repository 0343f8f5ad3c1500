/**
 * app.jobs: the maximal-text search queue (src/jobs/). With REDIS_URL it is a BullMQ queue shared
 * with any `npm run worker` processes, and this server works it too unless WORKER_IN_PROCESS=false;
 * without Redis it is an in-process queue with the same API.
 */
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { BullBackend, queueName, startBullWorker } from '../jobs/bullmq-backend.js';
import { MemoryBackend } from '../jobs/memory-backend.js';
import { searchProcessor } from '../jobs/processor.js';
import { JobQueue } from '../jobs/queue.js';
import { workerSettings } from '../jobs/settings.js';
import type { JobBackend } from '../jobs/types.js';

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobQueue;
  }
}

export default fp<{ config: Config }>(async (app, { config }) => {
  const settings = workerSettings();
  const processor = searchProcessor(app.clip, app.cache);
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
  app.addHook('onClose', async () => {
    await closeWorker();
    await backend.close();
  });
});
