/**
 * The in-process backend: an LRU of byte buffers bounded both by entry count and by total bytes,
 * with a time-to-live per entry. Used when no Redis URL is configured. Values are copied in and out,
 * so nothing a caller does to its own buffers can change what is cached.
 */
import { LRUCache } from 'lru-cache';
import type { ByteStore } from './types.js';

export interface MemoryStoreOptions {
  maxEntries: number;
  maxBytes: number;
}

export class MemoryStore implements ByteStore {
  readonly backend = 'memory';
  private readonly lru: LRUCache<string, Buffer>;

  constructor(options: MemoryStoreOptions) {
    this.lru = new LRUCache<string, Buffer>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      // Count the key too, and never 0: lru-cache requires a positive size.
      sizeCalculation: (value, key) => value.byteLength + key.length + 1,
      ttlAutopurge: false,
    });
  }

  ok(): boolean {
    return true;
  }

  async get(key: string): Promise<Buffer | undefined> {
    const stored = this.lru.get(key);
    return stored === undefined ? undefined : Buffer.from(stored);
  }

  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    // A dedicated allocation rather than a slice of Node's shared pool, which a long-lived entry
    // would otherwise pin in memory.
    const copy = Buffer.allocUnsafeSlow(value.byteLength);
    value.copy(copy);
    // An entry larger than maxBytes is silently not stored (and any older value is dropped).
    this.lru.set(key, copy, { ttl: ttlMs });
  }

  async delete(key: string): Promise<void> {
    this.lru.delete(key);
  }

  async flush(prefix: string): Promise<number> {
    this.lru.purgeStale();
    let count = 0;
    for (const key of [...this.lru.keys()]) {
      if (key.startsWith(prefix) && this.lru.delete(key)) count++;
    }
    return count;
  }

  async close(): Promise<void> {
    this.lru.clear();
  }
}
