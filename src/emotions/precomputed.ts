/**
 * Compositions shipped beside a model: `default-composition.json` in the model directory holds the
 * default emotion composition, so the first `GET /v1/emotions` answers at once instead of after
 * seconds of fitting. The fit is deterministic (its work is bounded by counts, never by time), so the
 * file is what the service would compute itself; test/emotions-default-fit.test.ts checks that it is.
 *
 * The file is a derived cache, not part of the model's contract: clip.json does not list it, and it
 * names the model it was computed for (the sha256 of clip.json) and the cache key of its fit. A file
 * for another model, another fit id or another solver version is ignored. `npm run default-fit --
 * MODEL_DIR` writes it (scripts/write-default-composition.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Composition } from './types.js';

export const PRECOMPUTED_FILE = 'default-composition.json';
const FORMAT = 1;

export interface PrecomputedComposition {
  format: number;
  /** sha256 of the model's clip.json. */
  model: string;
  /** The cache key the composition is stored under (names the solver version and the fit id). */
  key: string;
  composition: Composition;
}

/** The shipped composition of `modelDir`, if there is one for this model; undefined otherwise. */
export async function readPrecomputed(
  modelDir: string,
  modelSha256: string,
): Promise<PrecomputedComposition | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(modelDir, PRECOMPUTED_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const entry = JSON.parse(text) as Partial<PrecomputedComposition>;
  if (entry.format !== FORMAT || entry.model !== modelSha256 || !entry.key || !entry.composition)
    return undefined;
  return entry as PrecomputedComposition;
}

export async function writePrecomputed(
  modelDir: string,
  modelSha256: string,
  key: string,
  composition: Composition,
): Promise<string> {
  const file = path.join(modelDir, PRECOMPUTED_FILE);
  const entry: PrecomputedComposition = { format: FORMAT, model: modelSha256, key, composition };
  await writeFile(file, JSON.stringify(entry) + '\n');
  return file;
}
