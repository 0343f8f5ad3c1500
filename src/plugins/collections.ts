/**
 * app.collections: image collections of the loaded model (src/collections/), stored under
 * DATA_DIR/collections and shared by every replica on that volume. Builds interrupted by a
 * shutdown (or left by a replica that died) resume when the server is ready; on close, running
 * builds stop between batches and are left to resume. Settings: COLLECTION_* variables
 * (src/collections/settings.ts).
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { NeuronHeatmaps } from '../collections/heatmap.js';
import { CollectionSearch } from '../collections/retrieval.js';
import { CollectionService } from '../collections/service.js';
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
  const service = new CollectionService(
    new CollectionStore(config.dataDir),
    app.clip,
    spec,
    config.maxImagePixels,
    settings,
    app.log,
    {
      // Heatmaps decode under the image routes' one bound, and are cached in app.cache.
      heatmaps: new NeuronHeatmaps(
        app.clip,
        spec,
        (bytes, use) => app.encoders.withDecoded(bytes, use),
        app.cache,
      ),
      search: new CollectionSearch({ memoryBytes: settings.searchBytes, thread: config.inferenceThread }),
    },
  );
  app.decorate('collections', service);
  app.addHook('onReady', async () => {
    const resumed = await service.resumeAll();
    if (resumed.length > 0) app.log.info({ collections: resumed }, 'collection builds resumed');
  });
  // preClose: builds stop before the model's sessions are released (onClose of the model plugin).
  app.addHook('preClose', async () => service.stop());
};

export default fp(collectionsPlugin, { name: 'collections', dependencies: ['model', 'cache', 'jobs'] });
