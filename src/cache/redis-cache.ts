/**
 * The Redis backend, built to be a cache the service can lose. Every call resolves quickly whatever
 * Redis does: while it is unreachable (down at start, gone mid-run, or hung) gets miss and sets are
 * dropped, with no queueing and no waiting for a reconnection, which ioredis keeps retrying in the
 * background forever. The outage is logged once when it starts and once when it ends.
 *
 * Keys are stored under the service's key prefix, added here rather than with ioredis' keyPrefix
 * option, which SCAN ignores. Values are binary strings, read back with getBuffer.
 */
import { Redis } from 'ioredis';
import type { ByteStore, CacheLogger } from './types.js';

const CONNECT_TIMEOUT_MS = 1000;
const COMMAND_TIMEOUT_MS = 500;
const MAX_RECONNECT_DELAY_MS = 2000;
/** A server that lets this many commands in a row time out is treated as gone, and reconnected. */
const TIMEOUTS_BEFORE_RECONNECT = 3;
/** At most one warning this often about commands that fail while the connection is up. */
const COMMAND_ERROR_LOG_INTERVAL_MS = 30_000;
const SCAN_COUNT = 500;

export class RedisStore implements ByteStore {
  readonly backend = 'redis';
  private readonly client: Redis;
  private readonly server: string;
  private outage = false;
  private closing = false;
  private lastError = 'connection closed';
  private consecutiveTimeouts = 0;
  private lastCommandErrorLog = -Infinity;

  constructor(
    url: string,
    private readonly keyPrefix: string,
    private readonly logger: CacheLogger,
  ) {
    this.server = serverOf(url);
    this.client = new Redis(url, {
      enableOfflineQueue: false,
      connectTimeout: CONNECT_TIMEOUT_MS,
      commandTimeout: COMMAND_TIMEOUT_MS,
      maxRetriesPerRequest: 1,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 10), MAX_RECONNECT_DELAY_MS),
    });
    // Every lost or failed connection ends in 'close'; 'error' only tells why.
    this.client.on('error', (err: Error) => (this.lastError = err.message));
    this.client.on('close', () => this.onClose());
    this.client.on('ready', () => this.onReady());
  }

  ok(): boolean {
    return this.client.status === 'ready';
  }

  get(key: string): Promise<Buffer | undefined> {
    return this.run(
      'get',
      undefined,
      async () => (await this.client.getBuffer(this.keyPrefix + key)) ?? undefined,
    );
  }

  set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    return this.run('set', undefined, async () => {
      await this.client.set(this.keyPrefix + key, value, 'PX', ttlMs);
    });
  }

  delete(key: string): Promise<void> {
    return this.run('delete', undefined, async () => {
      await this.client.unlink(this.keyPrefix + key);
    });
  }

  /** SCAN + UNLINK of the keys under our prefix; if Redis fails midway, returns what was deleted. */
  async flush(prefix: string): Promise<number> {
    const pattern = escapeGlob(this.keyPrefix + prefix) + '*';
    let deleted = 0;
    let cursor = '0';
    do {
      const page = await this.run('flush', undefined, () =>
        this.client.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT),
      );
      if (page === undefined) return deleted;
      const [next, keys] = page;
      if (keys.length > 0) {
        const unlinked = await this.run('flush', undefined, () => this.client.unlink(...keys));
        if (unlinked === undefined) return deleted;
        deleted += unlinked;
      }
      cursor = next;
    } while (cursor !== '0');
    return deleted;
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
        return;
      } catch {
        // Fall through to a hard disconnect.
      }
    }
    this.client.disconnect();
  }

  /** Runs a command if the connection is up; on any failure, resolves `fallback` instead. */
  private async run<T, F>(operation: string, fallback: F, command: () => Promise<T>): Promise<T | F> {
    if (this.client.status !== 'ready') return fallback;
    try {
      const result = await command();
      this.consecutiveTimeouts = 0;
      return result;
    } catch (err) {
      this.onCommandError(operation, err instanceof Error ? err : new Error(String(err)));
      return fallback;
    }
  }

  private onCommandError(operation: string, err: Error): void {
    if (err.message === 'Command timed out') {
      this.consecutiveTimeouts++;
      if (this.consecutiveTimeouts >= TIMEOUTS_BEFORE_RECONNECT && this.client.status === 'ready') {
        this.consecutiveTimeouts = 0;
        this.lastError = `${TIMEOUTS_BEFORE_RECONNECT} commands in a row timed out`;
        this.client.disconnect(true);
      }
      return;
    }
    // Anything but an error reply from the server comes from a lost connection, reported once by
    // onClose. Error replies (out of memory, say) are worth a warning, but not one per call.
    if (err.name !== 'ReplyError') return;
    const now = performance.now();
    if (now - this.lastCommandErrorLog < COMMAND_ERROR_LOG_INTERVAL_MS) return;
    this.lastCommandErrorLog = now;
    this.logger.warn({ server: this.server, operation, err: err.message }, 'Redis cache command failed');
  }

  private onClose(): void {
    if (this.closing || this.outage) return;
    this.outage = true;
    this.logger.warn(
      { server: this.server, reason: this.lastError },
      'Redis unreachable: cache bypassed until it comes back',
    );
  }

  private onReady(): void {
    this.consecutiveTimeouts = 0;
    this.lastError = 'connection closed';
    if (this.outage) {
      this.outage = false;
      this.logger.info({ server: this.server }, 'Redis reachable again: cache back in use');
    } else {
      this.logger.info({ server: this.server }, 'Redis cache connected');
    }
  }
}

/** host:port of a Redis URL, for logs; never the credentials it may carry. */
function serverOf(url: string): string {
  try {
    return new URL(url).host || 'redis';
  } catch {
    return 'redis';
  }
}

/** `text` with the characters special to Redis' glob-style MATCH patterns escaped. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
