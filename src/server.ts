/**
 * Starts the service: reads the configuration, builds the app, listens, and shuts down cleanly on
 * SIGTERM/SIGINT (stop accepting, finish in-flight requests, release the model and the cache).
 */
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { ModelDirectoryError } from './clip/model-directory.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const app = await buildApp({ config });
  const shutdown = async (signal: string) => {
    app.log.info({ signal }, 'shutting down');
    await app.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  await app.listen({ port: config.port, host: config.host });
}

main().catch((error: unknown) => {
  // A bad configuration or model directory stops the process with one clear line.
  const known = error instanceof ModelDirectoryError || error instanceof ConfigError;
  console.error(known ? `error: ${error.message}` : error);
  process.exit(1);
});
