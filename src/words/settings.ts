/**
 * Settings of the word index, read from the environment (an empty variable counts as unset):
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | WORD_VOCAB_SIZE | 20000 | English words of the default vocabulary (geographic words are added) |
 * | WORD_VOCAB_FILE | — | a word list (one per line) replacing the default and the model's words.txt |
 * | WORD_INDEX_AUTOBUILD | auto | build at start: auto (only a words.txt or < 5,000 words), true, false |
 * | WORD_INDEX_BATCH | 32 | words per trunk run during a build |
 * | WORD_LEXICAL_THRESHOLD | 0.35 | default threshold on the lexical score (cross-validated R² from spelling) |
 * | WORD_LEXICAL_MAX_WORDS | 5000 | words (evenly spaced) entering the lexical regressions |
 * | WORD_QUERY_THREADS | 0 | onnxruntime threads of the index's MatMul (0: one per core) |
 * | WORD_RENDER_THREADS | cores/2 | worker threads drawing words during a build (0: the main thread) |
 */
import { availableParallelism } from 'node:os';
import { DEFAULT_LEXICAL_THRESHOLD, DEFAULT_MAX_WORDS } from './lexical.js';
import { DEFAULT_BATCH_SIZE } from './index-builder.js';
import { DEFAULT_VOCABULARY_SIZE } from './vocabulary.js';

export type AutoBuild = 'auto' | 'true' | 'false';

export interface WordSettings {
  vocabularySize: number;
  vocabularyFile?: string;
  autoBuild: AutoBuild;
  batchSize: number;
  lexicalThreshold: number;
  lexicalMaxWords: number;
  queryThreads: number;
  renderThreads: number;
}

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function readNumber(
  env: Env,
  name: string,
  fallback: number,
  min: number,
  max: number,
  integer = true,
): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    throw new RangeError(
      `${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${raw}"`,
    );
  }
  return value;
}

export function loadWordSettings(env: Env = process.env): WordSettings {
  const autoBuild = read(env, 'WORD_INDEX_AUTOBUILD') ?? 'auto';
  if (autoBuild !== 'auto' && autoBuild !== 'true' && autoBuild !== 'false') {
    throw new RangeError(`WORD_INDEX_AUTOBUILD must be auto, true or false, got "${autoBuild}"`);
  }
  return {
    vocabularySize: readNumber(env, 'WORD_VOCAB_SIZE', DEFAULT_VOCABULARY_SIZE, 1, 74_286),
    vocabularyFile: read(env, 'WORD_VOCAB_FILE'),
    autoBuild,
    batchSize: readNumber(env, 'WORD_INDEX_BATCH', DEFAULT_BATCH_SIZE, 1, 1024),
    lexicalThreshold: readNumber(env, 'WORD_LEXICAL_THRESHOLD', DEFAULT_LEXICAL_THRESHOLD, -1, 1, false),
    lexicalMaxWords: readNumber(env, 'WORD_LEXICAL_MAX_WORDS', DEFAULT_MAX_WORDS, 10, 1_000_000),
    queryThreads: readNumber(env, 'WORD_QUERY_THREADS', 0, 0, 256),
    renderThreads: readNumber(
      env,
      'WORD_RENDER_THREADS',
      Math.max(1, Math.floor(availableParallelism() / 2)),
      0,
      64,
    ),
  };
}
