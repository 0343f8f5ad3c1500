/**
 * Who may call what, and how much:
 * - API keys (`API_KEYS`, `Authorization: Bearer …`) guard the /v1 routes when set; /health, the
 *   OpenAPI document, /docs and /metrics stay open. Admin routes (`config: { admin: true }` or under
 *   /v1/admin) always need one of `ADMIN_API_KEYS`, and are refused when none is configured.
 *   Keys are compared in constant time (over their sha256, so lengths leak nothing either) and never logged.
 * - Rate limiting per API key or client IP (Redis store when Redis is configured; a Redis outage
 *   lets requests through rather than failing them).
 * - Back-pressure: 503 with Retry-After when the event loop lags or too many rows wait for onnxruntime.
 * - CORS and security headers.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import fp from 'fastify-plugin';
import cors from '@fastify/cors';
import helmet from 'helmet';
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import { Redis } from 'ioredis';
import type { FastifyRequest, FastifyPluginAsync } from 'fastify';
import type { Config } from '../config.js';
import { HttpError } from '../errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route needs an admin key. */
    admin?: boolean;
  }
}

const OPEN_PATHS = [/^\/health$/, /^\/metrics$/, /^\/openapi\.json$/, /^\/docs(\/|$)/, /^\/$/, /^\/assets\//];

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

const securityPlugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  const apiKeys = config.apiKeys.map(digest);
  const adminKeys = config.adminApiKeys.map(digest);

  // 401 (with WWW-Authenticate): no key or an unknown one; 403: a known key that may not do this.
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0];
    const admin = request.routeOptions.config?.admin === true || path.startsWith('/v1/admin');
    const token = bearer(request);
    if (admin) {
      if (adminKeys.length === 0) throw new HttpError(403, 'admin routes are disabled: set ADMIN_API_KEYS');
      if (token !== undefined && keyMatches(token, adminKeys)) return;
      if (token !== undefined && keyMatches(token, apiKeys)) {
        throw new HttpError(403, 'this key may not call admin routes');
      }
      reply.header('www-authenticate', 'Bearer');
      throw new HttpError(401, 'this route needs an admin key: Authorization: Bearer <key>');
    }
    if (apiKeys.length === 0 || OPEN_PATHS.some((open) => open.test(path))) return;
    if (token === undefined || !(keyMatches(token, apiKeys) || keyMatches(token, adminKeys))) {
      reply.header('www-authenticate', 'Bearer');
      throw new HttpError(401, 'missing or unknown API key: send Authorization: Bearer <key>');
    }
  });

  await app.register(cors, {
    origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins,
    methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
  });
  // helmet's headers, built once: @fastify/helmet would rebuild the policy on every request.
  const securityHeaders = helmet({
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
  });
  app.addHook('onRequest', (request, reply, done) => {
    securityHeaders(request.raw, reply.raw, (error?: unknown) => done(error as Error | undefined));
  });

  if (config.rateLimitPerMinute > 0) {
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
      max: config.rateLimitPerMinute,
      timeWindow: 60_000,
      redis,
      nameSpace: 'mmn:ratelimit:',
      skipOnError: true,
      allowList: (request) => OPEN_PATHS.some((open) => open.test(request.url.split('?')[0])),
      keyGenerator: (request) => {
        const token = bearer(request);
        return token ? `key:${digest(token).toString('hex').slice(0, 32)}` : `ip:${request.ip}`;
      },
    });
  }

  await app.register(underPressure, {
    maxEventLoopDelay: config.maxEventLoopDelayMs,
    retryAfter: 5,
    message: 'the service is under pressure; retry later',
  });

  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0];
    if (OPEN_PATHS.some((open) => open.test(path))) return;
    if (app.hasDecorator('clip') && app.clip.queueDepth > config.maxQueueDepth) {
      reply.header('retry-after', '2');
      throw new HttpError(503, `${app.clip.queueDepth} rows are waiting for the model; retry later`);
    }
  });
};

export default fp(securityPlugin, { name: 'security', dependencies: [] });
