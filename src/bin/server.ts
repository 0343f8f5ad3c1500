/**
 * Starts the service: reads the configuration, builds the app, listens, and shuts down cleanly on
 * SIGTERM/SIGINT: new requests get 503 with Connection: close for SHUTDOWN_DRAIN_MS, then the
 * listening socket closes; in-flight requests are answered, and only then are the model's sessions
 * and the cache released.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import { buildApp } from '../app.js';
import { ConfigError, loadConfig } from '../config.js';
import { ModelDirectoryError } from '../clip/model-directory.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const app = await buildApp({ config });
  // app.close() stops listening, answers requests already on a connection, waits for in-flight
  // ones and closes the plugins (the job worker, the cache, the model). A long-lived response (a
  // job's event stream) or a stuck plugin must not hold the process forever: after
  // SHUTDOWN_TIMEOUT_MS (default 10 s) the process exits anyway, with status 1.
  const graceMs =
    Number(process.env.SHUTDOWN_TIMEOUT_MS) > 0 ? Number(process.env.SHUTDOWN_TIMEOUT_MS) : 10_000;
  // Event streams (GET /v1/jobs/{id}/events) last as long as their job: Fastify's close would wait
  // for them before the job queue is even told to stop. They are ended at once on shutdown (clients
  // reconnect elsewhere); ordinary requests in flight are answered.
  const openResponses = new Set<ServerResponse>();
  app.server.on('request', (_request: IncomingMessage, response: ServerResponse) => {
    openResponses.add(response);
    response.once('close', () => openResponses.delete(response));
  });
  const endEventStreams = () => {
    for (const response of openResponses) {
      if (String(response.getHeader('content-type') ?? '').startsWith('text/event-stream')) response.end();
    }
  };
  // On the signal the listening socket closes at once (new connections are refused), but connections
  // already open stay open for SHUTDOWN_DRAIN_MS (default 500 ms), in which every new request on them
  // is answered 503 with Connection: close (Fastify's answer while closing): busy keep-alive clients
  // learn of the shutdown from an answer, instead of a reset when their idle connection is closed
  // under their next request. Then idle connections close; requests in flight are answered in full,
  // and only after them are the model's sessions released (onClose).
  const drainMs = process.env.SHUTDOWN_DRAIN_MS ? Number(process.env.SHUTDOWN_DRAIN_MS) : 500;
  if (!Number.isInteger(drainMs) || drainMs < 0 || drainMs >= graceMs) {
    throw new ConfigError(
      `SHUTDOWN_DRAIN_MS must be an integer from 0 to below SHUTDOWN_TIMEOUT_MS (${graceMs}), got "${process.env.SHUTDOWN_DRAIN_MS}"`,
    );
  }
  app.addHook('preClose', async () => {
    if (drainMs > 0) await new Promise((resolve) => setTimeout(resolve, drainMs));
  });
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal, graceMs }, 'shutting down');
    endEventStreams();
    // Answers still to come close their connection behind them: a client whose long request ends
    // after the drain must not reuse a connection that is about to close under its next request.
    for (const response of openResponses)
      if (!response.headersSent) response.setHeader('connection', 'close');
    const force = setTimeout(() => {
      app.log.error({ graceMs }, 'shutdown took too long; exiting');
      process.exit(1);
    }, graceMs);
    force.unref();
    // net.Server's close, not http.Server's: stop accepting without closing idle keep-alive
    // connections yet (Fastify's own close, after the drain, does that and waits for the rest).
    net.Server.prototype.close.call(app.server);
    try {
      await app.close();
    } catch (error) {
      app.log.error({ err: error }, 'error while shutting down');
      process.exit(1);
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  await app.listen({ port: config.port, host: config.host });
}

main().catch((error: unknown) => {
  // A bad configuration or model directory stops the process with one clear line.
  const known = error instanceof ModelDirectoryError || error instanceof ConfigError;
  console.error(known ? `error: ${error.message}` : error);
  process.exit(1);
});
