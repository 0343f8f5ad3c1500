/**
 * The neuron catalogue of a model directory (`neurons.json`): labels for some or all neurons,
 * `{"<id>": {"label"?: "yellow", "family"?: "colour", "source"?: "...", "score"?: 0.8,
 * "topWords"?: ["lemon", ...], "handLabel"?: "...", "credit"?: "..."}}` (docs/model-directory.md).
 * A plain string value is read as a label. A known field of the wrong type is an error; unknown
 * fields are ignored. Family "lexical" marks a lexical neuron (src/attribution/lexical-neurons.ts).
 */
import { readFile } from 'node:fs/promises';
import { ModelDirectoryError } from '../clip/model-directory.js';

export interface NeuronEntry {
  id: number;
  label?: string;
  family?: string;
  source?: string;
  score?: number;
  /** Words that activate the neuron most when rastered (e.g. the article's top 3 for RN50-x4). */
  topWords?: string[];
  /** A second label, where the label comes from elsewhere (the article's hand label). */
  handLabel?: string;
  /** Attribution the data's licence asks for. */
  credit?: string;
}

export class NeuronCatalogue {
  private constructor(
    readonly neuronCount: number,
    private readonly entries: Map<number, NeuronEntry>,
  ) {}

  static async load(file: string, neuronCount: number): Promise<NeuronCatalogue> {
    let json: unknown;
    try {
      json = JSON.parse(await readFile(file, 'utf8'));
    } catch (error) {
      throw new ModelDirectoryError(file, `is not a readable JSON catalogue (${(error as Error).message})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new ModelDirectoryError(file, 'must be a JSON object keyed by neuron id');
    }
    const entries = new Map<number, NeuronEntry>();
    for (const [key, value] of Object.entries(json)) {
      const id = Number(key);
      if (!Number.isInteger(id) || id < 0 || id >= neuronCount) {
        throw new ModelDirectoryError(file, `key "${key}" is not a neuron id from 0 to ${neuronCount - 1}`);
      }
      const entry = parseEntry(id, value);
      if (typeof entry === 'string') throw new ModelDirectoryError(file, `neuron ${key}: ${entry}`);
      entries.set(id, entry);
    }
    return new NeuronCatalogue(neuronCount, entries);
  }

  static empty(neuronCount: number): NeuronCatalogue {
    return new NeuronCatalogue(neuronCount, new Map());
  }

  get(id: number): NeuronEntry | undefined {
    return this.entries.get(id);
  }

  label(id: number): string | undefined {
    return this.entries.get(id)?.label;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every entry, by ascending id. */
  list(): NeuronEntry[] {
    return [...this.entries.values()].sort((a, b) => a.id - b.id);
  }
}

const STRING_FIELDS = ['label', 'family', 'source', 'handLabel', 'credit'] as const;

/** The entry, or a message saying which field is malformed. */
function parseEntry(id: number, value: unknown): NeuronEntry | string {
  if (typeof value === 'string') return { id, label: value };
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return 'must be an object {"label"?, "family"?, "source"?, ...} or a label string';
  const record = value as Record<string, unknown>;
  const entry: NeuronEntry = { id };
  for (const field of STRING_FIELDS) {
    const given = record[field];
    if (given === undefined) continue;
    if (typeof given !== 'string') return `"${field}" must be a string`;
    entry[field] = given;
  }
  if (record.score !== undefined) {
    if (typeof record.score !== 'number') return '"score" must be a number';
    entry.score = record.score;
  }
  if (record.topWords !== undefined) {
    const words = record.topWords;
    if (!Array.isArray(words) || !words.every((word) => typeof word === 'string'))
      return '"topWords" must be an array of strings';
    entry.topWords = [...(words as string[])];
  }
  return entry;
}
