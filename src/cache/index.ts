/**
 * The service's cache of vectors and results: createCache picks the backend (Redis when a URL is
 * configured, else an in-process LRU) and puts typed accessors on top of it. Vectors travel as
 * Float32Array and are stored as raw bytes, never as JSON numbers.
 */
import { bytesToJson, bytesToVector, jsonToBytes, vectorToBytes } from './codec.js';
import { MemoryStore } from './memory-cache.js';
import { RedisStore } from './redis-cache.js';
import type { BinaryCache, ByteStore, CacheBackend, CacheLogger, CacheStatus } from './types.js';

export { cacheKey, cacheKeyPrefix } from './keys.js';
export type { BinaryCache, CacheBackend, CacheLogger, CacheStatus } from './types.js';

export interface CacheOptions {
  /** Redis to use; without it the cache lives in this process. */
  redisUrl?: string;
  /** Default time to live of an entry. */
  ttlSeconds: number;
  /** Bounds of the in-process cache (ignored with Redis). */
  maxEntries?: number;
  maxBytes?: number;
  /** Namespace of this service's keys in Redis (ignored in memory). */
  keyPrefix?: string;
  logger: CacheLogger;
}

const DEFAULT_MAX_ENTRIES = 50_000;
const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;
const DEFAULT_KEY_PREFIX = 'mmn:';

export function createCache(options: CacheOptions): BinaryCache {
  const ttlMs = toTtlMs(options.ttlSeconds);
  const { logger } = options;
  let store: ByteStore;
  if (options.redisUrl) {
    const keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    // An empty prefix would let flush() delete every key in the database, not only ours.
    if (keyPrefix === '') throw new RangeError('the cache key prefix must not be empty');
    store = new RedisStore(options.redisUrl, keyPrefix, logger);
  } else {
    const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    store = new MemoryStore({ maxEntries, maxBytes });
    logger.info({ maxEntries, maxBytes }, 'In-process memory cache (no Redis URL configured)');
  }
  return new TypedCache(store, ttlMs, logger);
}

class TypedCache implements BinaryCache {
  constructor(
    private readonly store: ByteStore,
    private readonly defaultTtlMs: number,
    private readonly logger: CacheLogger,
  ) {}

  get backend(): CacheBackend {
    return this.store.backend;
  }

  status(): CacheStatus {
    return { backend: this.store.backend, ok: this.store.ok() };
  }

  async getVector(key: string): Promise<Float32Array | undefined> {
    const bytes = await this.store.get(key);
    if (bytes === undefined) return undefined;
    return bytesToVector(bytes) ?? this.unreadable(key, 'vector');
  }

  async setVector(key: string, value: Float32Array, ttlSeconds?: number): Promise<void> {
    await this.store.set(key, vectorToBytes(value), this.ttlMs(ttlSeconds));
  }

  getBuffer(key: string): Promise<Buffer | undefined> {
    return this.store.get(key);
  }

  async setBuffer(key: string, value: Buffer, ttlSeconds?: number): Promise<void> {
    await this.store.set(key, value, this.ttlMs(ttlSeconds));
  }

  async getJson<T>(key: string): Promise<T | undefined> {
    const bytes = await this.store.get(key);
    if (bytes === undefined) return undefined;
    return bytesToJson<T>(bytes) ?? this.unreadable(key, 'JSON');
  }

  async setJson(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    await this.store.set(key, jsonToBytes(value), this.ttlMs(ttlSeconds));
  }

  delete(key: string): Promise<void> {
    return this.store.delete(key);
  }

  flush(prefix = ''): Promise<number> {
    return this.store.flush(prefix);
  }

  close(): Promise<void> {
    return this.store.close();
  }

  private ttlMs(ttlSeconds: number | undefined): number {
    return ttlSeconds === undefined ? this.defaultTtlMs : toTtlMs(ttlSeconds);
  }

  /** A stored value that does not decode is treated as a miss. */
  private unreadable(key: string, kind: string): undefined {
    this.logger.warn({ key }, `Cached value is not a valid ${kind}; ignored`);
    return undefined;
  }
}

function toTtlMs(ttlSeconds: number): number {
  if (!(ttlSeconds > 0) || !Number.isFinite(ttlSeconds)) {
    throw new RangeError(`cache TTL must be a positive number of seconds, got ${ttlSeconds}`);
  }
  return Math.max(1, Math.ceil(ttlSeconds * 1000));
}
