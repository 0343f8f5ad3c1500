/**
 * Writes a model directory's default emotion composition and its atlases (default-composition.json,
 * see src/emotions/precomputed.ts), so the service answers the first GET /v1/emotions and
 * /v1/emotions/atlas without fitting:
 *
 *   npm run default-fit -- models/toyworld
 *
 * It builds the service on the model with the default settings (word index in a temporary data
 * directory, so the lexical neurons the default fit masks are the ones the service detects), fits
 * exactly as a request would, and writes the results with the model's hash, the fit's cache key and
 * the lexical set's basis.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { PRECOMPUTED_FILE, writePrecomputed } from '../src/emotions/precomputed.js';

const modelDir = process.argv[2];
if (!modelDir || modelDir === '--help') {
  console.log('usage: npm run default-fit -- MODEL_DIR');
  process.exit(modelDir ? 0 : 2);
}
// The service would serve the file it is about to replace: it goes first.
await rm(path.join(modelDir, PRECOMPUTED_FILE), { force: true });
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'default-fit-'));
const config = {
  ...loadConfig({}),
  modelDir: path.resolve(modelDir),
  dataDir,
  redisUrl: undefined,
  executionProviders: ['cpu' as const],
  warmDefaultFit: false,
  collectionProbe: false,
};
const app = await buildApp({ config, logger: false });
try {
  await app.ready();
  const started = performance.now();
  const { composition, lexical } = await app.emotions.defaultComposition();
  const atlases = { 2: await app.emotions.atlas(2), 7: await app.emotions.atlas(7) };
  const seconds = (performance.now() - started) / 1000;
  const file = await writePrecomputed(config.modelDir, {
    model: app.clip.directory.sha256,
    key: app.emotions.keyOf(composition.fitId),
    lexicalBasis: app.words.lexicalBasis(),
    composition,
    lexical,
    atlases,
  });
  const fits = Object.values(composition.concepts);
  console.log(
    `wrote ${file}: ${fits.length} concepts (${fits.filter((fit) => fit.converged).length} converged), ` +
      `${composition.excluded} lexical neurons masked, ${composition.work.passes} Newton steps, ` +
      `atlases of 2 and 7 factors, ${seconds.toFixed(1)} s`,
  );
} finally {
  await app.close();
  await rm(dataDir, { recursive: true, force: true });
}
