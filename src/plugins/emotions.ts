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
  // Fits mask the service's lexical set: the catalogue's and the word index's detected neurons (a
  // small vocabulary's index built at start is awaited, so the set does not depend on its progress).
  service.useLexicalNeurons(() => app.words.lexicalSet(undefined, { waitForBuild: true }));
  // The default composition shipped with the model (default-composition.json), when it is this
  // model's and its lexical set is the one this service will detect: the first GET /v1/emotions
  // then answers without fitting and without waiting for the word index.
  const { directory } = app.clip;
  const shipped = await readPrecomputed(directory.dir, directory.sha256);
  const usable = shipped?.lexicalBasis === app.words.lexicalBasis();
  if (shipped && usable) service.preloadDefault(shipped.key, shipped, shipped.atlases);
  app.log.info({ shipped: Boolean(shipped), usable }, 'default emotion composition');
  if (config.warmDefaultFit)
    // After start, in the background: the default composition (the shipped one, or a fit on the
    // solver thread), so a first visit finds it ready. A failure is logged; a request retries it.
    app.addHook('onReady', async () => {
      Promise.all([service.atlas(2), service.atlas(7)]).catch((error: unknown) => {
        app.log.warn({ err: error }, 'default emotion composition not prepared at start');
      });
    });
  app.addHook('onClose', () => service.close());
};

export default fp(emotionsPlugin, {
  name: 'emotions',
  dependencies: ['attribution', 'model', 'cache', 'words'],
});
