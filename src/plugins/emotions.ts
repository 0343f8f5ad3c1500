/**
 * app.emotions: emotion composition on the attribution vectors (src/emotions/): sparse fits of the
 * feelings wheel or of any concepts, the default composition and its NMF atlas. The service starts
 * the composition solver's worker thread, which stops when the app closes. The default composition
 * comes from the model directory when shipped there (src/emotions/precomputed.ts), and is prepared
 * in the background at start (WARM_DEFAULT_FIT).
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { readPrecomputed } from '../emotions/precomputed.js';
import { EmotionService } from '../emotions/service.js';

declare module 'fastify' {
  interface FastifyInstance {
    emotions: EmotionService;
  }
}

const emotionsPlugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const service = new EmotionService(app.attribution, app.cache, config.fitMaxSweeps);
  app.decorate('emotions', service);
  // The default composition shipped with the model (default-composition.json), when it is this
  // model's: the first GET /v1/emotions then answers without fitting.
  const { directory } = app.clip;
  const shipped = await readPrecomputed(directory.dir, directory.sha256);
  if (shipped) service.preload(shipped.key, shipped.composition);
  app.log.info({ shipped: Boolean(shipped) }, 'default emotion composition');
  if (config.warmDefaultFit)
    // After start, in the background: the default composition (the shipped one, or a fit on the
    // solver thread), so a first visit finds it ready. A failure is logged; a request retries it.
    app.addHook('onReady', async () => {
      service.defaultComposition().catch((error: unknown) => {
        app.log.warn({ err: error }, 'default emotion composition not prepared at start');
      });
    });
  app.addHook('onClose', () => service.close());
};

export default fp(emotionsPlugin, { name: 'emotions', dependencies: ['attribution', 'model', 'cache'] });
