/**
 * The neuron catalogue of a model directory (`neurons.json`): labels for some or all neurons,
 * `{"<id>": {"label": "yellow", "family"?: "colour", "source"?: "...", "score"?: 0.8}}`.
 * A plain string value is read as a label.
 */
import { readFile } from 'node:fs/promises';
import { ModelDirectoryError } from '../clip/model-directory.js';

export interface NeuronEntry {
  id: number;
  label?: string;
  family?: string;
  source?: string;
  score?: number;
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
      entries.set(id, parseEntry(id, value));
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
}

function parseEntry(id: number, value: unknown): NeuronEntry {
  if (typeof value === 'string') return { id, label: value };
  const entry: NeuronEntry = { id };
  if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    if (typeof record.label === 'string') entry.label = record.label;
    if (typeof record.family === 'string') entry.family = record.family;
    if (typeof record.source === 'string') entry.source = record.source;
    if (typeof record.score === 'number') entry.score = record.score;
  }
  return entry;
}
