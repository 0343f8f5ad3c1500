/**
 * The service's configuration, read once from environment variables. An empty variable counts as
 * unset. Every variable is listed, with its default, in the README's configuration table.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAX_IMAGE_PIXELS } from './limits.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The embedded default model: a small CLIP trained on the project's synthetic world. */
export const DEFAULT_MODEL_DIR = path.join(REPO_ROOT, 'models', 'toyworld');

export type ExecutionProviderName = 'cuda' | 'cpu';

export interface Config {
  port: number;
  host: string;
  modelDir: string;
  redisUrl?: string;
  executionProviders: ExecutionProviderName[];
  /** onnxruntime intra-op threads; 0 lets onnxruntime choose (one per core). */
  intraOpThreads: number;
  interOpThreads: number;
  /**
   * Sessions on a thread of their own (default), or on the event loop, where every onnxruntime run
   * holds every other request (ORT_THREAD=false: for comparison, or a runtime without worker threads).
   */
  inferenceThread: boolean;
  /** Most rows merged into one onnxruntime run. */
  maxBatch: number;
  /** How long the first request of a batch waits for company, in milliseconds. */
  maxBatchWaitMs: number;
  cacheTtlSeconds: number;
  cacheMaxEntries: number;
  dataDir: string;
  logLevel: string;
  /** Bearer keys for the API's read routes; empty: reads are open. */
  apiKeys: string[];
  /** Bearer keys for admin routes (index builds, cache flush, job administration); empty: disabled. */
  adminApiKeys: string[];
  /** Requests per minute per client (API key or IP); 0 turns rate limiting off. */
  rateLimitPerMinute: number;
  /** Allowed CORS origins; ['*'] allows any. */
  corsOrigins: string[];
  requestTimeoutMs: number;
  /**
   * Sweeps over the classes one multinomial composition fit may spend (past them, the fit reports
   * converged: false): a count of work, so the same request gives the same answer on any machine.
   */
  fitMaxSweeps: number;
  /** Prepare the default emotion composition in the background at start (WARM_DEFAULT_FIT). */
  warmDefaultFit: boolean;
  /**
   * Install the model directory's probe collection (its probe.tar.gz, as the collection `probe`)
   * at start (COLLECTION_PROBE).
   */
  collectionProbe: boolean;
  /** Rows waiting for onnxruntime beyond which new requests get 503 with Retry-After. */
  maxQueueDepth: number;
  maxEventLoopDelayMs: number;
  /** A comment line on idle job event streams this often, so proxies keep them open (0: never). */
  sseHeartbeatMs: number;
  /** Failed authentications per minute per client address before it gets 429 (0: not limited). */
  authFailuresPerMinute: number;
  /** Most pixels (width × height) of an image the service decodes; above it, 413 from the header. */
  maxImagePixels: number;
  /** Images decoded and resized at once; the rest wait their turn (bounds decoding memory). */
  imageDecodeConcurrency: number;
  /** A client must send a request's headers within this many milliseconds (Node's headersTimeout). */
  headersTimeoutMs: number;
  /** … and the whole request, headers and body, within this many (Node's requestTimeout). */
  bodyTimeoutMs: number;
  /** An idle keep-alive connection is closed after this many milliseconds. */
  keepAliveTimeoutMs: number;
  /** A socket with no traffic at all is closed after this many milliseconds (0: never). */
  connectionTimeoutMs: number;
  /** Open connections beyond this are closed at once (Node's server.maxConnections; 0: no cap). */
  maxConnections: number;
  /**
   * Which proxies' X-Forwarded-For to believe for the client address (rate limits and failed
   * authentications are counted per address): false (the socket's peer), true (any), or a list of
   * addresses, CIDR ranges or proxy-addr's names (loopback, linklocal, uniquelocal).
   */
  trustProxy: boolean | string[];
}

type Env = Record<string, string | undefined>;

/** A configuration variable holds a value the service cannot use. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function readInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function readList(env: Env, name: string, fallback: string[] = []): string[] {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function readBoolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

function readProviders(env: Env): ExecutionProviderName[] {
  const raw = read(env, 'ORT_PROVIDERS') ?? 'cuda,cpu';
  const names = raw.split(',').map((name) => name.trim().toLowerCase());
  for (const name of names) {
    if (name !== 'cuda' && name !== 'cpu') {
      throw new ConfigError(`ORT_PROVIDERS lists "${name}"; supported providers are cuda and cpu`);
    }
  }
  return names as ExecutionProviderName[];
}

function readTrustProxy(env: Env): boolean | string[] {
  const raw = read(env, 'TRUST_PROXY');
  if (raw === undefined || raw.toLowerCase() === 'false') return false;
  if (raw.toLowerCase() === 'true') return true;
  return readList(env, 'TRUST_PROXY');
}

export function loadConfig(env: Env = process.env): Config {
  const requestTimeoutMs = readInt(env, 'REQUEST_TIMEOUT_MS', 120_000, 0, 3_600_000);
  const headersTimeoutMs = readInt(env, 'HEADERS_TIMEOUT_MS', 10_000, 1, 3_600_000);
  const bodyTimeoutMs = readInt(env, 'BODY_TIMEOUT_MS', 30_000, 1, 3_600_000);
  if (bodyTimeoutMs < headersTimeoutMs) {
    throw new ConfigError(
      `BODY_TIMEOUT_MS (${bodyTimeoutMs}) bounds the whole request, headers included: it must be at least HEADERS_TIMEOUT_MS (${headersTimeoutMs})`,
    );
  }
  // A socket is quiet while its request is being worked on: its idle limit must outlast the
  // request's own (REQUEST_TIMEOUT_MS answers 503 first).
  const defaultConnectionTimeout = requestTimeoutMs > 0 ? requestTimeoutMs + 10_000 : 0;
  return {
    port: readInt(env, 'PORT', 8080, 0, 65535),
    host: read(env, 'HOST') ?? '0.0.0.0',
    modelDir: path.resolve(read(env, 'MODEL_DIR') ?? DEFAULT_MODEL_DIR),
    redisUrl: read(env, 'REDIS_URL'),
    executionProviders: readProviders(env),
    intraOpThreads: readInt(env, 'ORT_INTRA_OP_THREADS', 0, 0, 1024),
    interOpThreads: readInt(env, 'ORT_INTER_OP_THREADS', 1, 0, 1024),
    inferenceThread: readBoolean(env, 'ORT_THREAD', true),
    maxBatch: readInt(env, 'BATCH_MAX_SIZE', 64, 1, 4096),
    maxBatchWaitMs: readInt(env, 'BATCH_MAX_WAIT_MS', 0, 0, 1000),
    cacheTtlSeconds: readInt(env, 'CACHE_TTL_SECONDS', 86400, 1, 365 * 86400),
    cacheMaxEntries: readInt(env, 'CACHE_MAX_ENTRIES', 50000, 1, 10_000_000),
    dataDir: path.resolve(read(env, 'DATA_DIR') ?? path.join(REPO_ROOT, '.data')),
    logLevel: read(env, 'LOG_LEVEL') ?? 'info',
    apiKeys: readList(env, 'API_KEYS'),
    adminApiKeys: readList(env, 'ADMIN_API_KEYS'),
    rateLimitPerMinute: readInt(env, 'RATE_LIMIT_PER_MINUTE', 6000, 0, 10_000_000),
    corsOrigins: readList(env, 'CORS_ORIGINS', ['*']),
    requestTimeoutMs,
    fitMaxSweeps: readInt(env, 'FIT_MAX_SWEEPS', 2000, 1, 1_000_000),
    warmDefaultFit: readBoolean(env, 'WARM_DEFAULT_FIT', true),
    collectionProbe: readBoolean(env, 'COLLECTION_PROBE', true),
    maxQueueDepth: readInt(env, 'MAX_QUEUE_DEPTH', 4096, 1, 10_000_000),
    maxEventLoopDelayMs: readInt(env, 'MAX_EVENT_LOOP_DELAY_MS', 2000, 0, 600_000),
    sseHeartbeatMs: readInt(env, 'SSE_HEARTBEAT_MS', 15_000, 0, 3_600_000),
    authFailuresPerMinute: readInt(env, 'AUTH_FAILURES_PER_MINUTE', 30, 0, 10_000_000),
    maxImagePixels: readInt(env, 'MAX_IMAGE_PIXELS', MAX_IMAGE_PIXELS, 1, 1_000_000_000),
    imageDecodeConcurrency: readInt(env, 'IMAGE_DECODE_CONCURRENCY', 2, 1, 256),
    headersTimeoutMs,
    bodyTimeoutMs,
    keepAliveTimeoutMs: readInt(env, 'KEEP_ALIVE_TIMEOUT_MS', 5_000, 1, 3_600_000),
    connectionTimeoutMs: readInt(env, 'CONNECTION_TIMEOUT_MS', defaultConnectionTimeout, 0, 7_200_000),
    maxConnections: readInt(env, 'MAX_CONNECTIONS', 1024, 0, 10_000_000),
    trustProxy: readTrustProxy(env),
  };
}
