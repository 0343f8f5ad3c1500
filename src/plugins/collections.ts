/**
 * app.collections: image collections of the loaded model (src/collections/), stored under
 * DATA_DIR/collections and shared by every replica on that volume. Builds are jobs of app.jobs:
 * this plugin registers their kinds (collection-build, collection-shard: collections/build-job.ts)
 * and the stop hook of a cancelled build. Builds interrupted by a shutdown (or left by a replica
 * that died) resume when the server is ready; on close, running builds stop between batches and
 * are left to resume (the job queue hands them back). Settings: COLLECTION_* variables
 * (src/collections/settings.ts; COLLECTION_SHARD in build-job.ts).
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { CollectionBuilds, shardSizeOf } from '../collections/build-job.js';
import { NeuronHeatmaps } from '../collections/heatmap.js';
import { CollectionSearch } from '../collections/retrieval.js';
import { installProbe, PROBE_ID } from '../collections/probe.js';
import { buildCollectionOf, CollectionService } from '../collections/service.js';
import { loadCollectionSettings } from '../collections/settings.js';
import { CollectionStore } from '../collections/store.js';

declare module 'fastify' {
  interface FastifyInstance {
    collections: CollectionService;
  }
}

const collectionsPlugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const { manifest } = app.clip.directory;
  const spec = { imageSize: manifest.image_size, mean: manifest.mean, std: manifest.std };
  const settings = loadCollectionSettings();
  const store = new CollectionStore(config.dataDir);
  const builds = new CollectionBuilds({
    store,
    model: app.clip,
    spec,
    // Builds decode under the image routes' one bound (IMAGE_DECODE_CONCURRENCY).
    decode: app.encoders.decode,
    batchSize: settings.batchSize,
    shardSize: shardSizeOf(),
    log: app.log,
  });
  app.jobs.registry.register('collection-build', builds.buildProcessor);
  app.jobs.registry.register('collection-shard', builds.shardProcessor);
  app.jobs.whenStopped('collection-build', (view) => builds.stopped(buildCollectionOf(view), view.id));
  const service = new CollectionService(
    store,
    app.clip,
    spec,
    app.encoders.decode,
    settings,
    app.log,
    {
      // Heatmaps decode under the image routes' one bound, and are cached in app.cache.
      heatmaps: new NeuronHeatmaps(app.clip, spec, app.encoders.decode, app.cache),
      search: new CollectionSearch({ memoryBytes: settings.searchBytes, thread: config.inferenceThread }),
    },
    { queue: app.jobs, builds },
  );
  app.decorate('collections', service);
  let probe: Promise<void> | undefined;
  const stopProbe = new AbortController();
  app.addHook('onReady', async () => {
    const resumed = await service.resumeAll();
    if (resumed.length > 0) app.log.info({ collections: resumed }, 'collection builds resumed');
    // The model's probe collection (probe.ts): listed from now on, staged and built in the background.
    if (config.collectionProbe) {
      const warn = (error: unknown) =>
        app.log.warn({ err: error }, 'the probe collection could not be installed');
      const install = await installProbe(service, app.clip, app.log, stopProbe.signal).catch(warn);
      probe = install?.staged.then(() => {
        if (install.outcome === 'installed')
          app.log.info({ collection: PROBE_ID }, 'probe collection staged');
      }, warn);
    }
  });
  // preClose: builds stop before the model's sessions are released (onClose of the model plugin).
  app.addHook('preClose', async () => {
    // A probe still being staged stops (and is staged again at the next start).
    stopProbe.abort();
    await probe;
    await service.stop();
  });
};

export default fp(collectionsPlugin, { name: 'collections', dependencies: ['model', 'cache', 'jobs'] });
