/**
 * The binary cache: Redis when REDIS_URL is set, an in-memory LRU otherwise (see src/cache/).
 * Every lookup is counted as a hit or a miss for /metrics.
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { Counter } from 'prom-client';
import type { Config } from '../config.js';
import { createCache, type BinaryCache } from '../cache/index.js';

declare module 'fastify' {
  interface FastifyInstance {
    cache: BinaryCache;
  }
}

const cachePlugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const cache = createCache({
    redisUrl: config.redisUrl,
    ttlSeconds: config.cacheTtlSeconds,
    maxEntries: config.cacheMaxEntries,
    logger: app.log,
  });
  app.decorate('cache', countLookups(cache, app.metrics.cacheLookups));
  app.addHook('onClose', async () => cache.close());
};

export default fp(cachePlugin, { name: 'cache', dependencies: ['metrics'] });

function countLookups(cache: BinaryCache, lookups: Counter<'result'>): BinaryCache {
  const counted = async <T>(lookup: Promise<T | undefined>) => {
    const value = await lookup;
    lookups.inc({ result: value === undefined ? 'miss' : 'hit' });
    return value;
  };
  return {
    get backend() {
      return cache.backend;
    },
    status: () => cache.status(),
    getVector: (key) => counted(cache.getVector(key)),
    setVector: (key, value, ttl) => cache.setVector(key, value, ttl),
    getBuffer: (key) => counted(cache.getBuffer(key)),
    setBuffer: (key, value, ttl) => cache.setBuffer(key, value, ttl),
    getJson: <T>(key: string) => counted(cache.getJson<T>(key)),
    setJson: (key, value, ttl) => cache.setJson(key, value, ttl),
    delete: (key) => cache.delete(key),
    flush: (prefix) => cache.flush(prefix),
    close: () => cache.close(),
  };
}
