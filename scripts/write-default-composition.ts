/**
 * Writes a model directory's default emotion composition (default-composition.json, see
 * src/emotions/precomputed.ts), so the service answers the first GET /v1/emotions without fitting:
 *
 *   npm run default-fit -- models/toyworld
 *
 * It builds the service on the model (word index in a temporary data directory, so the lexical
 * neurons the default fit masks are the ones the service would detect), fits the default composition
 * exactly as a request would, and writes it with the model's hash and the fit's cache key.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { writePrecomputed } from '../src/emotions/precomputed.js';

const modelDir = process.argv[2];
if (!modelDir) throw new Error('usage: write-default-composition.ts MODEL_DIR');
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'default-fit-'));
const config = {
  ...loadConfig({}),
  modelDir: path.resolve(modelDir),
  dataDir,
  redisUrl: undefined,
  executionProviders: ['cpu' as const],
  warmDefaultFit: false,
};
const app = await buildApp({ config, logger: false });
try {
  await app.ready();
  const started = performance.now();
  const composition = await app.emotions.defaultComposition();
  const seconds = (performance.now() - started) / 1000;
  const file = await writePrecomputed(
    config.modelDir,
    app.clip.directory.sha256,
    app.emotions.keyOf(composition.fitId),
    composition,
  );
  const converged = Object.values(composition.concepts).filter((fit) => fit.converged).length;
  console.log(
    `wrote ${file}: ${Object.keys(composition.concepts).length} concepts (${converged} converged), ` +
      `${composition.excluded} neurons masked, ${composition.work.passes} Newton steps, ${seconds.toFixed(1)} s`,
  );
} finally {
  await app.close();
  await rm(dataDir, { recursive: true, force: true });
}
