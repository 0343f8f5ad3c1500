/**
 * Builds the service for tests (`app.inject`, no listening socket) on an exported model directory:
 * by default the shared random-weight reference checkpoint, whose outputs under OpenAI's own code
 * are in ../shared/clip/reference-small/expected.json.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { exportCheckpointCached, repoRoot } from './tiny-model.js';

export const SHARED_CLIP = path.resolve(repoRoot, '../shared/clip');
export const REFERENCE_SMALL = path.join(SHARED_CLIP, 'reference-small');

export interface ReferencePrompt {
  text: string;
  tokens: number[];
  text_features: number[];
  attribution: number[];
  top10_ids: number[];
}

export interface ReferenceImage {
  word: string;
  png: string;
  layer4_spatial_mean: number[];
  image_features: number[];
}

export interface ReferenceExpectations {
  prompts: ReferencePrompt[];
  images: ReferenceImage[];
  zero_shot: { logit_scale: number; rows: string[]; cols: string[]; probs_per_image: number[][] };
  extra_resize_case: { png: string; image_features: number[]; cosine_with_square_yellow: number };
}

export function referenceExpectations(): ReferenceExpectations {
  return JSON.parse(
    readFileSync(path.join(REFERENCE_SMALL, 'expected.json'), 'utf8'),
  ) as ReferenceExpectations;
}

/** The model directory exported from the shared reference checkpoint (cached across runs). */
export function referenceModelDir(): Promise<string> {
  return exportCheckpointCached('reference-small', path.join(REFERENCE_SMALL, 'checkpoint.pt'));
}

export async function buildTestApp(overrides: Partial<Config> = {}): Promise<App> {
  const modelDir = overrides.modelDir ?? (await referenceModelDir());
  const config: Config = {
    ...loadConfig({}),
    executionProviders: ['cpu'],
    intraOpThreads: 1,
    rateLimitPerMinute: 0,
    // Tests ask for the default composition when they test it; a fit per app would load the cores.
    warmDefaultFit: false,
    // The model's probe collection (2,290 images to build) only where a test asks for it.
    collectionProbe: false,
    // No 503 for a late event loop: on a loaded CI machine a test's loop can lag seconds behind,
    // which is the machine, not the service (test/security.test.ts tests the guard with its own value).
    maxEventLoopDelayMs: 0,
    ...overrides,
    modelDir,
  };
  const app = await buildApp({ config, logger: process.env.TEST_LOG ? { level: 'error' } : false });
  await app.ready();
  return app;
}

export function readReferencePng(relative: string): Buffer {
  return readFileSync(path.join(REFERENCE_SMALL, relative));
}
