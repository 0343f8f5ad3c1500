/**
 * The binary cache: Redis when REDIS_URL is set, an in-memory LRU otherwise (see src/cache/).
 */
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { createCache, type BinaryCache } from '../cache/index.js';

declare module 'fastify' {
  interface FastifyInstance {
    cache: BinaryCache;
  }
}

export default fp<{ config: Config }>(async (app, { config }) => {
  const cache = createCache({
    redisUrl: config.redisUrl,
    ttlSeconds: config.cacheTtlSeconds,
    maxEntries: config.cacheMaxEntries,
    logger: app.log,
  });
  app.decorate('cache', cache);
  app.addHook('onClose', async () => cache.close());
});
