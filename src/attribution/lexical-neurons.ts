/**
 * The service's one notion of "lexical neuron" (a neuron that reads how a word is spelled rather than
 * what it means; the article masks 71 of RN50-x4's): the union of
 *   - "catalogue": the model directory's catalogue entries of family `lexical` (or `text`) —
 *     for RN50-x4 the article's published ids (tools/export/neurons.py), or a user's own labels;
 *   - "detected": the neurons the word index's detector flags at a threshold (src/words/lexical.ts;
 *     docs/lexical-neurons.md), when the index is ready and has lexical scores.
 * Every consumer (word neighbours and arithmetic, emotion and concept fits, maximal-text search, and
 * GET /v1/neurons/lexical) takes its set from here and reports which sources it used (LexicalUse).
 */
import type { NeuronCatalogue, NeuronEntry } from './neuron-catalogue.js';

export type LexicalSource = 'catalogue' | 'detected';

/** Catalogue families that mark a lexical neuron ("text" is the article's word for them). */
export const LEXICAL_FAMILIES: ReadonlySet<string> = new Set(['lexical', 'text']);

/** The word index's part: flagged neurons at a threshold, or why there are none. */
export type DetectedLexical =
  | { available: true; threshold: number; flagged: readonly number[]; scores: readonly number[] }
  | { available: false; reason: string };

export interface LexicalNeuron {
  neuron: number;
  sources: LexicalSource[];
  label?: string;
  /** The catalogue entry's own source (e.g. the article's file), when the catalogue has it. */
  catalogueSource?: string;
  /** The detector's score, when the index has scores. */
  score?: number;
}

/** What a response says about the set it used. */
export interface LexicalUse {
  /** Sources whose neurons are in the set (a source that is consulted but empty is still listed). */
  sources: LexicalSource[];
  /** Neurons in the set. */
  neurons: number;
  catalogue: number;
  detected: number;
  /** Threshold of the detector's flag, when the detected source was available. */
  threshold?: number;
  /** Why the detected source is missing, when it is. */
  detectedUnavailable?: string;
}

export interface LexicalSet {
  /** Ascending ids of the union. */
  neurons: number[];
  entries: LexicalNeuron[];
  use: LexicalUse;
}

/** The catalogue's lexical entries, by ascending id. */
export function catalogueLexical(catalogue: NeuronCatalogue): NeuronEntry[] {
  return catalogue.list().filter((entry) => LEXICAL_FAMILIES.has(entry.family?.toLowerCase() ?? ''));
}

/** The union of the catalogue's lexical entries and the detector's flags. */
export function combineLexical(
  catalogueEntries: readonly NeuronEntry[],
  detected: DetectedLexical,
): LexicalSet {
  const byId = new Map<number, LexicalNeuron>();
  for (const entry of catalogueEntries) {
    byId.set(entry.id, {
      neuron: entry.id,
      sources: ['catalogue'],
      ...(entry.label !== undefined ? { label: entry.label } : {}),
      ...(entry.source !== undefined ? { catalogueSource: entry.source } : {}),
    });
  }
  if (detected.available) {
    for (const neuron of detected.flagged) {
      const known = byId.get(neuron);
      if (known) known.sources.push('detected');
      else byId.set(neuron, { neuron, sources: ['detected'] });
    }
    for (const entry of byId.values()) {
      const score = detected.scores[entry.neuron];
      if (score !== undefined) entry.score = score;
    }
  }
  const entries = [...byId.values()].sort((a, b) => a.neuron - b.neuron);
  const sources: LexicalSource[] = ['catalogue'];
  if (detected.available) sources.push('detected');
  return {
    neurons: entries.map((entry) => entry.neuron),
    entries,
    use: {
      sources,
      neurons: entries.length,
      catalogue: catalogueEntries.length,
      detected: detected.available ? detected.flagged.length : 0,
      ...(detected.available ? { threshold: detected.threshold } : { detectedUnavailable: detected.reason }),
    },
  };
}

/** The set without the word index (the detected source reported missing, with `reason`). */
export function catalogueLexicalSet(catalogue: NeuronCatalogue, reason: string): LexicalSet {
  return combineLexical(catalogueLexical(catalogue), { available: false, reason });
}
