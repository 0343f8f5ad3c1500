/**
 * Builds the Fastify application in three layers, registered in order:
 *   1. external plugins (OpenAPI document, Swagger UI, multipart uploads; metrics; keys, rate
 *      limits, back-pressure, CORS and security headers),
 *   2. the service's own plugins (the cache, the CLIP model, attribution on it, the word index,
 *      emotions on both, the job queue), each naming the plugins it depends on,
 *   3. thin routes, each with the TypeBox schemas that validate it and document it.
 * `src/bin/server.ts` only builds the app and listens; tests build it and call `app.inject`.
 */
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.js';
import externalPlugins from './plugins/external.js';
import metricsPlugin from './plugins/metrics.js';
import securityPlugin from './plugins/security.js';
import cachePlugin from './plugins/cache.js';
import modelPlugin from './plugins/model.js';
import attributionPlugin from './plugins/attribution.js';
import emotionsPlugin from './plugins/emotions.js';
import wordsPlugin from './plugins/words.js';
import typographicPlugin from './plugins/typographic.js';
import jobsPlugin from './plugins/jobs.js';
import collectionsPlugin from './plugins/collections.js';
import evidencePlugin from './plugins/evidence.js';
import neuronLabelsPlugin from './plugins/neuron-labels.js';
import explorerPlugin from './plugins/explorer.js';
import routes from './routes/index.js';
import { unsupportedMediaTypeMessage, validatorCompiler } from './routes/validation.js';
import { DEFAULT_BODY_BYTES } from './limits.js';
import { RetryLaterError } from './errors.js';

export type App = FastifyInstance;

export interface BuildOptions {
  config: Config;
  /** pino options, or false to silence logs (tests). */
  logger?: boolean | object;
}

export async function buildApp({ config, logger }: BuildOptions): Promise<App> {
  const app = Fastify({
    logger: logger ?? { level: config.logLevel, redact: ['req.headers.authorization'] },
    // Slow clients: the headers must arrive within HEADERS_TIMEOUT_MS and the whole request within
    // BODY_TIMEOUT_MS, well below REQUEST_TIMEOUT_MS, or Node closes the connection (checked every
    // connectionsCheckingInterval). The work on a request is bounded by the hook below, not by the
    // socket, so a slow answer is a 503 rather than a dropped connection; a socket idle for
    // CONNECTION_TIMEOUT_MS (longer than that) is closed, and an idle keep-alive one after
    // KEEP_ALIVE_TIMEOUT_MS.
    requestTimeout: config.bodyTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    connectionTimeout: config.connectionTimeoutMs,
    http: {
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.bodyTimeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(config.headersTimeoutMs / 4))),
    },
    bodyLimit: DEFAULT_BODY_BYTES,
    // Plugins load the model (an RN50-x4 directory is 720 MB, read and hashed) and the word index:
    // on loaded cores that takes longer than avvio's default of 10 s, which failed the start.
    pluginTimeout: 300_000,
    requestIdHeader: 'x-request-id',
    // The client address that rate limits and failed authentications are counted against.
    trustProxy: config.trustProxy,
    genReqId: () => crypto.randomUUID(),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    // Malformed URLs and over-long path parameters are refused before routing; answer them in the
    // service's error shape (Fastify's own answer adds a code and echoes the path).
    frameworkErrors: frameworkError,
  }).withTypeProvider<TypeBoxTypeProvider>();
  // TypeBox's validation, with messages that name what is allowed (src/routes/validation.ts).
  app.setValidatorCompiler(
    validatorCompiler({ neuronCount: () => (app.hasDecorator('clip') ? app.clip.neuronCount : undefined) }),
  );
  // Connections beyond MAX_CONNECTIONS are closed by Node as soon as they are accepted.
  if (config.maxConnections > 0) app.server.maxConnections = config.maxConnections;
  // Bodies are JSON (or multipart for images); anything else is 415 Unsupported Media Type.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({
      statusCode: 404,
      error: 'Not Found',
      message: `Route ${request.method} ${request.url.split('?')[0]} not found`,
    });
  });

  if (config.requestTimeoutMs > 0) {
    // Past REQUEST_TIMEOUT_MS the client gets a 503 that says so. The work itself runs to its end:
    // it cannot be interrupted midway, and fits and searches have time budgets of their own.
    app.addHook('onRequest', (request, reply, done) => {
      const timer = setTimeout(() => {
        if (reply.sent || reply.raw.headersSent) return;
        request.log.warn({ url: request.url, limitMs: config.requestTimeoutMs }, 'request timed out');
        void reply
          .code(503)
          .header('retry-after', '5')
          .send({
            statusCode: 503,
            error: 'Service Unavailable',
            message: `the request took longer than ${config.requestTimeoutMs} ms (REQUEST_TIMEOUT_MS); retry later`,
          });
      }, config.requestTimeoutMs);
      timer.unref();
      reply.raw.once('close', () => clearTimeout(timer));
      done();
    });
  }

  await app.register(externalPlugins);
  await app.register(metricsPlugin);
  await app.register(securityPlugin, { config });
  await app.register(cachePlugin, { config });
  await app.register(modelPlugin, { config });
  await app.register(attributionPlugin);
  await app.register(wordsPlugin, { config });
  await app.register(emotionsPlugin, { config });
  await app.register(jobsPlugin, { config });
  await app.register(typographicPlugin);
  await app.register(collectionsPlugin, { config });
  await app.register(evidencePlugin, { config });
  await app.register(neuronLabelsPlugin, { config });
  await app.register(explorerPlugin);
  await app.register(routes, { config });
  return app;
}

/** 4xx errors reach the client with their message; anything else is logged and answered bare. */
function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const status = error.statusCode ?? 500;
  if (error instanceof RetryLaterError) void reply.header('retry-after', String(error.retryAfterS));
  if (status >= 400 && status < 500) {
    const message = error.validation
      ? validationMessage(error)
      : error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? unsupportedMediaTypeMessage(request.headers['content-type'], request.routeOptions.schema?.body)
        : error.message;
    return reply.code(status).send({ statusCode: status, error: reasonPhrase(status), message });
  }
  // A 503 is back-pressure or a failed model batch: one warning line each (a stack per refused
  // request would add work exactly when the service is saturated); anything else is an error.
  if (status === 503) request.log.warn({ reason: error.message }, 'request refused: service unavailable');
  else request.log.error({ err: error }, 'request failed');
  const publicStatus = status === 503 ? 503 : 500;
  return reply.code(publicStatus).send({
    statusCode: publicStatus,
    error: reasonPhrase(publicStatus),
    message: publicStatus === 503 ? error.message : 'Internal Server Error',
  });
}

function frameworkError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
  const status = error.statusCode === 414 ? 414 : 400;
  void reply.code(status).send({
    statusCode: status,
    error: reasonPhrase(status),
    message: status === 414 ? 'a path parameter is too long' : 'the URL is not valid',
  });
}

/** The first validation error, as src/routes/validation.ts words it ("factors must be 2 or 7"). */
function validationMessage(error: FastifyError): string {
  const first = error.validation?.[0];
  if (!first) return `${error.validationContext ?? 'request'} ${error.message}`;
  return first.message ?? `${error.validationContext ?? 'request'}${first.instancePath} is invalid`;
}

function reasonPhrase(status: number): string {
  const phrases: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
    406: 'Not Acceptable',
    409: 'Conflict',
    413: 'Payload Too Large',
    414: 'URI Too Long',
    415: 'Unsupported Media Type',
    422: 'Unprocessable Entity',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    503: 'Service Unavailable',
  };
  return phrases[status] ?? 'Error';
}
