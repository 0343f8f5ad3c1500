/**
 * Who may call what, and how much:
 * - API keys (`API_KEYS`, `Authorization: Bearer …`) guard the /v1 routes when set; /health, the
 *   OpenAPI document, /docs and /metrics stay open. Admin routes (`config: { admin: true }` or under
 *   /v1/admin) always need one of `ADMIN_API_KEYS`, and are refused when none is configured.
 *   Keys are compared in constant time (over their sha256, so lengths leak nothing either) and never logged.
 * - Rate limiting per valid API key, else per client address (an unknown key spends its address's
 *   budget), before authentication; failed authentications counted per address, which past
 *   AUTH_FAILURES_PER_MINUTE is refused with 429 for the rest of the minute (Redis store when Redis
 *   is configured; a Redis outage lets requests through rather than failing them).
 * - Back-pressure: 503 with Retry-After when the event loop lags or too many rows wait for onnxruntime.
 * - CORS and security headers.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import fp from 'fastify-plugin';
import helmet from 'helmet';
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import { Redis } from 'ioredis';
import type { FastifyReply, FastifyRequest, FastifyPluginAsync } from 'fastify';
import type { Config } from '../config.js';
import { HttpError } from '../errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route needs an admin key. */
    admin?: boolean;
  }
}

const OPEN_PATHS = [/^\/health$/, /^\/metrics$/, /^\/openapi\.json$/, /^\/docs(\/|$)/, /^\/$/, /^\/assets\//];

/** The request's path, without its query. */
function pathOf(request: FastifyRequest): string {
  const url = request.url;
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/** True when `presented` equals one of `keys`, compared in constant time. */
export function keyMatches(presented: string, keys: readonly Buffer[]): boolean {
  const candidate = digest(presented);
  let match = false;
  for (const key of keys) match = timingSafeEqual(candidate, key) || match;
  return match;
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const [scheme, token] = header.split(' ', 2);
  return scheme?.toLowerCase() === 'bearer' && token ? token.trim() : undefined;
}

/** The headers a helmet middleware sets, read once by running it on a recording response. */
function staticHeaders(middleware: ReturnType<typeof helmet>): Record<string, string> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader: (name: string, value: string | number | readonly string[]) => {
      headers[name] = Array.isArray(value) ? value.join(', ') : String(value);
    },
    removeHeader: (name: string) => delete headers[name],
  };
  let failure: unknown;
  middleware(
    {} as IncomingMessage,
    response as unknown as ServerResponse,
    (error?: unknown) => (failure = error),
  );
  if (failure) throw failure;
  return headers;
}

/** The methods a preflight allows, and the answer headers a page's script may read (binary vectors). */
const CORS_METHODS = 'GET, POST, PUT, DELETE, OPTIONS';
const CORS_EXPOSED = 'X-Shape, X-Dtype';

/** Adds `field` to the reply's Vary header unless it is there (or Vary is `*`). */
function addVary(reply: FastifyReply, field: string): void {
  const header = reply.getHeader('vary');
  if (header === undefined || header === '') {
    void reply.header('vary', field);
    return;
  }
  const value = Array.isArray(header) ? header.join(', ') : String(header);
  if (value === '*') return;
  const wanted = field.toLowerCase();
  if (value.split(',').some((name) => name.trim().toLowerCase() === wanted)) return;
  void reply.header('vary', `${value}, ${field}`);
}

/**
 * CORS for any origin (`*` among CORS_ORIGINS) or a fixed list, as @fastify/cors answered with
 * { origin, methods: CORS_METHODS, exposedHeaders } and its defaults (strict preflights, 204), in one
 * function: that plugin rebuilt its options and resolved the origin on every request. Sets the
 * headers of a simple request; answers a preflight (OPTIONS) itself and then returns true.
 */
export function corsHeaders(
  origins: readonly string[],
): (request: FastifyRequest, reply: FastifyReply) => boolean {
  const any = origins.includes('*');
  const allowed = new Set(origins);
  return (request, reply) => {
    const origin = request.headers.origin;
    if (any) {
      void reply.header('access-control-allow-origin', '*');
    } else {
      addVary(reply, 'Origin');
      if (origin !== undefined && allowed.has(origin))
        void reply.header('access-control-allow-origin', origin);
    }
    void reply.header('access-control-expose-headers', CORS_EXPOSED);
    if (request.raw.method !== 'OPTIONS') return false;
    if (!origin || !request.headers['access-control-request-method']) {
      void reply.status(400).type('text/plain').send('Invalid Preflight Request');
      return true;
    }
    void reply.header('access-control-allow-methods', CORS_METHODS);
    addVary(reply, 'Access-Control-Request-Headers');
    const requested = request.headers['access-control-request-headers'];
    if (requested !== undefined) void reply.header('access-control-allow-headers', requested);
    void reply.code(204).header('content-length', '0').send();
    return true;
  };
}

const securityPlugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const apiKeys = config.apiKeys.map(digest);
  const adminKeys = config.adminApiKeys.map(digest);
  const isOpen = (request: FastifyRequest) => {
    const path = pathOf(request);
    return OPEN_PATHS.some((open) => open.test(path));
  };
  // Whether the request carries one of the configured keys (read or admin), checked once.
  const validity = new WeakMap<FastifyRequest, boolean>();
  const hasValidKey = (request: FastifyRequest): boolean => {
    let valid = validity.get(request);
    if (valid === undefined) {
      const token = bearer(request);
      valid = token !== undefined && (keyMatches(token, apiKeys) || keyMatches(token, adminKeys));
      validity.set(request, valid);
    }
    return valid;
  };

  // Headers first, so that every answer below (401, 403, 429, 503) carries them: CORS's and helmet's
  // in one hook, which also answers preflights (before authentication: a browser sends none).
  // helmet's headers are the same on every answer: they are taken from helmet once, at start, and
  // set in one call per request (@fastify/helmet would rebuild the policy on every request, and
  // helmet's own middleware runs eleven functions per request).
  const securityHeaders = staticHeaders(
    helmet({
      contentSecurityPolicy: {
        directives: {
          defaultSrc: ["'self'"],
          imgSrc: ["'self'", 'data:', 'blob:'],
          styleSrc: ["'self'", "'unsafe-inline'"],
          scriptSrc: ["'self'"],
          connectSrc: ["'self'"],
          // helmet's default upgrade-insecure-requests would send the docs' and the explorer's own
          // scripts to https:// when the service is reached over plain HTTP on a LAN address.
          upgradeInsecureRequests: null,
        },
      },
      crossOriginResourcePolicy: { policy: 'cross-origin' },
    }),
  );
  const cors = corsHeaders(config.corsOrigins);
  app.addHook('onRequest', (request, reply, done) => {
    if (cors(request, reply)) return; // a preflight, answered
    void reply.headers(securityHeaders);
    done();
  });
  // Lets Fastify route preflights to any path; the hook above has answered them before the handler.
  app.options('*', { schema: { hide: true } }, (_request, reply) => reply.callNotFound());

  // Rate limits run before authentication, keyed on a *valid* key, else on the client address: a
  // made-up token per request (or none) spends its address's budget, never a fresh one.
  let countFailure: ((request: FastifyRequest) => Promise<{ isExceeded: boolean; ttl: number }>) | undefined;
  if (config.rateLimitPerMinute > 0 || config.authFailuresPerMinute > 0) {
    const redis = config.redisUrl
      ? new Redis(config.redisUrl, {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          connectTimeout: 1000,
          commandTimeout: 500,
          lazyConnect: false,
        })
      : undefined;
    redis?.on('error', () => undefined); // the cache plugin reports Redis's state; here an outage only skips limits
    if (redis) app.addHook('onClose', async () => void redis.disconnect());
    await app.register(rateLimit, {
      global: false,
      max: config.rateLimitPerMinute,
      timeWindow: 60_000,
      redis,
      nameSpace: 'mmn:ratelimit:',
      skipOnError: true,
      allowList: isOpen,
      keyGenerator: (request) =>
        hasValidKey(request)
          ? `key:${digest(bearer(request)!).toString('hex').slice(0, 32)}`
          : `ip:${request.ip}`,
    });
    if (config.rateLimitPerMinute > 0) app.addHook('onRequest', app.rateLimit());
    if (config.authFailuresPerMinute > 0) {
      const failures = app.createRateLimit({
        max: config.authFailuresPerMinute,
        timeWindow: 60_000,
        keyGenerator: (request) => `authfail:ip:${request.ip}`,
        allowList: () => false,
      });
      countFailure = async (request) => {
        const count = await failures(request);
        return count.isAllowed ? { isExceeded: false, ttl: 0 } : count;
      };
    }
  }

  // An address past AUTH_FAILURES_PER_MINUTE is refused until its minute is over, whatever key it
  // sends: were a valid key let through, a 429 would only be another way of saying "wrong key".
  // The count is shared through Redis when configured; this map of blocked addresses is per process.
  const blocked = new Map<string, number>();
  const tooManyFailures = (request: FastifyRequest, reply: FastifyReply, until: number) => {
    const seconds = Math.max(1, Math.ceil((until - Date.now()) / 1000));
    void reply.header('retry-after', String(seconds));
    return new HttpError(
      429,
      `too many failed authentication attempts from this address (AUTH_FAILURES_PER_MINUTE=${config.authFailuresPerMinute}); retry in ${seconds} s`,
    );
  };
  const refuse = async (request: FastifyRequest, reply: FastifyReply, error: HttpError): Promise<never> => {
    if (countFailure) {
      const count = await countFailure(request);
      if (count.isExceeded) {
        const until = Date.now() + Math.max(count.ttl, 1000);
        if (blocked.size >= 10_000) {
          const now = Date.now();
          for (const [ip, end] of blocked) if (end <= now || blocked.size >= 10_000) blocked.delete(ip);
        }
        blocked.set(request.ip, until);
        throw tooManyFailures(request, reply, until);
      }
    }
    void reply.header('www-authenticate', 'Bearer');
    throw error;
  };

  // 401 (with WWW-Authenticate): no key or an unknown one; 403: a known key that may not do this.
  // A callback hook: most requests need no key (or none is configured) and pass without a promise.
  app.addHook('onRequest', (request, reply, done) => {
    const admin = request.routeOptions.config?.admin === true || pathOf(request).startsWith('/v1/admin');
    const needsKey = admin || (apiKeys.length > 0 && !isOpen(request));
    if (!needsKey) return done();
    authenticate(request, reply, admin).then(() => done(), done);
  });
  const authenticate = async (
    request: FastifyRequest,
    reply: FastifyReply,
    admin: boolean,
  ): Promise<void> => {
    const until = blocked.get(request.ip);
    if (until !== undefined) {
      if (until > Date.now()) throw tooManyFailures(request, reply, until);
      blocked.delete(request.ip);
    }
    const token = bearer(request);
    if (admin) {
      if (adminKeys.length === 0) throw new HttpError(403, 'admin routes are disabled: set ADMIN_API_KEYS');
      if (token !== undefined && keyMatches(token, adminKeys)) return;
      if (token !== undefined && keyMatches(token, apiKeys)) {
        throw new HttpError(403, 'this key may not call admin routes');
      }
      return refuse(
        request,
        reply,
        new HttpError(401, 'this route needs an admin key: Authorization: Bearer <key>'),
      );
    }
    if (!hasValidKey(request)) {
      return refuse(
        request,
        reply,
        new HttpError(401, 'missing or unknown API key: send Authorization: Bearer <key>'),
      );
    }
  };

  await app.register(underPressure, {
    maxEventLoopDelay: config.maxEventLoopDelayMs,
    retryAfter: 5,
    message: 'the service is under pressure; retry later',
  });

  app.addHook('onRequest', (request, reply, done) => {
    if (isOpen(request)) return done();
    if (app.hasDecorator('clip') && app.clip.queueDepth > config.maxQueueDepth) {
      void reply.header('retry-after', '2');
      return done(new HttpError(503, `${app.clip.queueDepth} rows are waiting for the model; retry later`));
    }
    done();
  });
};

export default fp(securityPlugin, { name: 'security', dependencies: [] });
