/**
 * The CLIP model of MODEL_DIR, loaded and validated once, and the cached encoders built on it.
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { ClipModel } from '../clip/clip-model.js';
import { Encoders } from '../clip/encoders.js';

declare module 'fastify' {
  interface FastifyInstance {
    clip: ClipModel;
    encoders: Encoders;
  }
}

const modelPlugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const model = await ClipModel.load(config.modelDir, {
    ...config,
    warn: (message) => app.log.warn(message),
  });
  app.log.info(
    { model: model.name, sha256: model.sha256, executionProvider: model.executionProvider },
    'model loaded',
  );
  model.runObserver = (graph, rows, ms) => {
    app.metrics.ortRunSeconds.observe({ graph }, ms / 1000);
    app.metrics.ortBatchRows.observe({ graph }, rows);
  };
  app.decorate('clip', model);
  app.decorate(
    'encoders',
    new Encoders(model, app.cache, {
      maxPixels: config.maxImagePixels,
      concurrency: config.imageDecodeConcurrency,
    }),
  );
  // onClose runs after the server has answered every request in flight (Fastify closes the server
  // first); rows still queued (a client that went away, a background fit) get their runs before the
  // sessions go.
  app.addHook('onClose', async () => {
    if (!(await model.drained())) app.log.warn('model runs still in flight at shutdown; releasing anyway');
    await model.release();
  });
};

export default fp(modelPlugin, { name: 'model', dependencies: ['metrics', 'cache'] });
