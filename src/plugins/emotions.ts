/**
 * app.emotions: emotion composition on the attribution vectors (src/emotions/): sparse fits of the
 * feelings wheel or of any concepts, the default composition and its NMF atlas. The service starts
 * the composition solver's worker thread, which stops when the app closes.
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { EmotionService } from '../emotions/service.js';

declare module 'fastify' {
  interface FastifyInstance {
    emotions: EmotionService;
  }
}

const emotionsPlugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const service = new EmotionService(app.attribution, app.cache, config.fitMaxSweeps);
  app.decorate('emotions', service);
  app.addHook('onClose', () => service.close());
};

export default fp(emotionsPlugin, { name: 'emotions', dependencies: ['attribution', 'cache'] });
