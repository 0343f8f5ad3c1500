/**
 * Results shipped beside a model: `default-composition.json` in the model directory holds the
 * default emotion composition and its atlases, so the first `GET /v1/emotions` and
 * `/v1/emotions/atlas` answer at once instead of after seconds of fitting. The fit and the atlas
 * are deterministic (the fit's work is bounded by counts, never by time; the atlas is seeded), so
 * the file holds what the service would compute itself; test/emotions-default-fit.test.ts checks it.
 *
 * The default fit masks the lexical set, and its detected part comes from the word index, which a
 * fresh start builds in the background. The file names what that set depends on (`lexicalBasis`:
 * the word vocabulary's hash and the detector's threshold) so the service can serve the file before
 * the index is ready, only when the set it will detect is the one the file masked.
 *
 * The file is a derived cache, not part of the model's contract: clip.json does not list it, and it
 * names the model it was computed for (the sha256 of clip.json) and the cache key of its fit. A file
 * for another model, fit id, solver version or lexical basis is ignored. `npm run default-fit --
 * MODEL_DIR` writes it (scripts/write-default-composition.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { LexicalUse } from '../attribution/lexical-neurons.js';
import type { Atlas, Composition } from './types.js';

export const PRECOMPUTED_FILE = 'default-composition.json';
const FORMAT = 2;

export interface PrecomputedComposition {
  format: number;
  /** sha256 of the model's clip.json. */
  model: string;
  /** The cache key the composition is stored under (names the solver version and the fit id). */
  key: string;
  /** What the lexical set depends on besides the model (see WordService.lexicalBasis). */
  lexicalBasis: string;
  composition: Composition;
  /** The lexical set the composition masked, as responses report it. */
  lexical: LexicalUse;
  /** The default composition's atlases, by number of factors. */
  atlases: Record<string, Atlas>;
}

/** The shipped results of `modelDir`, if there are some for this model; undefined otherwise. */
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

export async function writePrecomputed(modelDir: string, entry: Omit<PrecomputedComposition, 'format'>) {
  const file = path.join(modelDir, PRECOMPUTED_FILE);
  await writeFile(file, JSON.stringify({ format: FORMAT, ...entry }) + '\n');
  return file;
}
