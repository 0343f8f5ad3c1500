/**
 * Prometheus metrics at GET /metrics (prom-client, one registry per app): request durations by
 * route, onnxruntime run times and batch sizes per graph, cache hits and misses, and whatever
 * other plugins register on `app.metrics.registry` (job queue depth and durations).
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServiceMetrics {
  registry: Registry;
  requestSeconds: Histogram<'method' | 'route' | 'status_code'>;
  ortRunSeconds: Histogram<'graph'>;
  ortBatchRows: Histogram<'graph'>;
  cacheLookups: Counter<'result'>;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ServiceMetrics;
  }
}

const metricsPlugin: FastifyPluginAsync = async (app) => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics: ServiceMetrics = {
    registry,
    requestSeconds: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request durations by route',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    ortRunSeconds: new Histogram({
      name: 'ort_run_duration_seconds',
      help: 'onnxruntime run durations per graph',
      labelNames: ['graph'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    ortBatchRows: new Histogram({
      name: 'ort_batch_rows',
      help: 'Rows merged into one onnxruntime run, per graph',
      labelNames: ['graph'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers: [registry],
    }),
    cacheLookups: new Counter({
      name: 'cache_lookups_total',
      help: 'Cache lookups by result (hit or miss); the hit ratio is hit / (hit + miss)',
      labelNames: ['result'],
      registers: [registry],
    }),
  };
  app.decorate('metrics', metrics);

  // A callback hook, as every hook on the path of each request: an async one is a promise more.
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requestSeconds.observe(
      { method: request.method, route, status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    done();
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
};

export default fp(metricsPlugin, { name: 'metrics', dependencies: [] });
