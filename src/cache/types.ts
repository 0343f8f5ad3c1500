/**
 * The shapes shared by the cache: the public BinaryCache every caller sees, and the ByteStore that
 * each backend (memory, Redis) implements underneath it. Backends only move bytes; turning vectors
 * and JSON into bytes happens once, above them (see codec.ts and index.ts).
 */

export type CacheBackend = 'redis' | 'memory';

export interface CacheStatus {
  backend: CacheBackend;
  /** False while Redis is unreachable; the cache then bypasses itself (every get misses). */
  ok: boolean;
}

export interface CacheLogger {
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

/**
 * A best-effort cache of binary values. Calls never throw because the backend is unavailable:
 * a get then resolves undefined and a set does nothing. Values are copied in and out, so callers
 * may freely mutate what they store or receive.
 */
export interface BinaryCache {
  readonly backend: CacheBackend;
  status(): CacheStatus;
  getVector(key: string): Promise<Float32Array | undefined>;
  setVector(key: string, value: Float32Array, ttlSeconds?: number): Promise<void>;
  getBuffer(key: string): Promise<Buffer | undefined>;
  setBuffer(key: string, value: Buffer, ttlSeconds?: number): Promise<void>;
  getJson<T>(key: string): Promise<T | undefined>;
  setJson(key: string, value: unknown, ttlSeconds?: number): Promise<void>;
  delete(key: string): Promise<void>;
  /** Deletes this service's keys that start with `prefix` (all of them by default); returns how many. */
  flush(prefix?: string): Promise<number>;
  close(): Promise<void>;
}

/**
 * What a backend provides. Keys arrive without the service's key prefix; the store adds it if it
 * shares its namespace with others. `get` returns a buffer the caller owns; `set` may keep `value`
 * only if it copies it first.
 */
export interface ByteStore {
  readonly backend: CacheBackend;
  ok(): boolean;
  get(key: string): Promise<Buffer | undefined>;
  set(key: string, value: Buffer, ttlMs: number): Promise<void>;
  delete(key: string): Promise<void>;
  flush(prefix: string): Promise<number>;
  close(): Promise<void>;
}
