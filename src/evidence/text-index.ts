/**
 * The text-side ("speaking for") index of a model: for a vocabulary of concept texts, each text's
 * attribution vector a = W·t/|t| (averaged over the templates), stored as one [T, C] Float32 matrix
 * computed once, so a neuron's top texts are a column lookup. Also the texts' unit embeddings
 * (averaged over the templates), which CLIP-Dissect's image–text similarities need. Numerical only.
 */
import { createHash } from 'node:crypto';
import { topK } from '../words/word-index.js';
import type { SharedTextRows } from './shared-text-rows.js';

/** The templates every concept text is averaged over ("{}" stands for the text). */
export const SPEAKING_TEMPLATES: readonly string[] = ['{}', 'a {}'];

export interface TextRank {
  text: string;
  /** The neuron's component of the text's W·t/|t|, averaged over the templates. */
  attribution: number;
}

export class TextSideIndex {
  readonly rows: number;
  private readonly lookup = new Map<string, number>();

  constructor(
    readonly texts: readonly string[],
    readonly templates: readonly string[],
    /** a = W·t/|t| (template mean), row-major [T, C]. */
    readonly attributions: Float32Array,
    readonly columns: number,
    /** The texts' embeddings (unit template mean), row-major [T, D]. */
    readonly embeddings: Float32Array,
    readonly embedDim: number,
  ) {
    this.rows = texts.length;
    if (attributions.length !== this.rows * columns) {
      throw new RangeError(
        `attributions hold ${attributions.length} values; expected ${this.rows}×${columns}`,
      );
    }
    if (embeddings.length !== this.rows * embedDim) {
      throw new RangeError(`embeddings hold ${embeddings.length} values; expected ${this.rows}×${embedDim}`);
    }
    texts.forEach((text, i) => this.lookup.set(text, i));
  }

  indexOf(text: string): number | undefined {
    return this.lookup.get(text);
  }

  /** Neuron n's component of every text's attribution vector [T]. */
  column(neuron: number): Float32Array {
    const out = new Float32Array(this.rows);
    for (let i = 0; i < this.rows; i++) out[i] = this.attributions[i * this.columns + neuron];
    return out;
  }

  /** The k texts whose attribution the neuron carries most (highest first, ties by smaller row). */
  top(neuron: number, k: number): TextRank[] {
    const column = this.column(neuron);
    return topK(column, k).map((i) => ({ text: this.texts[i], attribution: column[i] }));
  }

  /** The k texts whose attribution the neuron carries least (lowest first, ties by smaller row). */
  bottom(neuron: number, k: number): TextRank[] {
    const column = this.column(neuron);
    const negated = column.map((value) => -value);
    return topK(negated, k).map((i) => ({ text: this.texts[i], attribution: column[i] }));
  }
}

/** The identity of a text vocabulary under templates (the cache key's part). */
export function textSideKey(texts: readonly string[], templates: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify({ texts, templates })).digest('hex');
}

/** The vocabulary of the index: the word index's words, then the categories not among them. */
export function conceptTexts(words: readonly string[], categories: readonly string[] = []): string[] {
  const seen = new Set(words);
  const out = [...words];
  for (const category of categories) {
    if (!seen.has(category)) {
      seen.add(category);
      out.push(category);
    }
  }
  return out;
}

/**
 * Builds the index with the caller's encoders: `attribution(text)` gives W·t/|t| averaged over the
 * templates, `embedding(prompt)` a prompt's embedding; rows are computed in batches of `batch`.
 * With `shared`, the first `shared.words` rows (the word list, the same for every collection) are
 * read from, or computed into, chunk files shared by the processes of one DATA_DIR
 * (shared-text-rows.ts), and only the rest (a collection's categories) here.
 */
export async function buildTextSideIndex(options: {
  texts: readonly string[];
  templates?: readonly string[];
  neuronCount: number;
  embedDim: number;
  attribution: (text: string, templates: readonly string[]) => Promise<Float32Array>;
  embeddings: (prompts: readonly string[]) => Promise<Float32Array[]>;
  batch?: number;
  shared?: { rows: SharedTextRows; words: number };
}): Promise<TextSideIndex> {
  const { texts, neuronCount: C, embedDim: D, batch = 64, shared } = options;
  const templates = options.templates ?? SPEAKING_TEMPLATES;
  const attributions = new Float32Array(texts.length * C);
  const embeddings = new Float32Array(texts.length * D);
  const compute = async (first: number, end: number, beat: () => Promise<void> = async () => undefined) => {
    for (let start = first; start < end; start += batch) {
      const chunk = texts.slice(start, Math.min(end, start + batch));
      const vectors = await Promise.all(chunk.map((text) => options.attribution(text, templates)));
      vectors.forEach((vector, j) => attributions.set(vector, (start + j) * C));
      const prompts = chunk.flatMap((text) => templates.map((template) => template.replaceAll('{}', text)));
      const embedded = await options.embeddings(prompts);
      chunk.forEach((_, j) => {
        const mean = new Float64Array(D);
        for (let k = 0; k < templates.length; k++) {
          const e = embedded[j * templates.length + k];
          let norm = 0;
          for (let d = 0; d < D; d++) norm += e[d] * e[d];
          norm = Math.sqrt(norm) || 1;
          for (let d = 0; d < D; d++) mean[d] += e[d] / norm;
        }
        let norm = 0;
        for (let d = 0; d < D; d++) norm += mean[d] * mean[d];
        norm = Math.sqrt(norm) || 1;
        for (let d = 0; d < D; d++) embeddings[(start + j) * D + d] = mean[d] / norm;
      });
      await beat();
    }
  };
  const words = shared ? Math.min(shared.words, texts.length) : 0;
  if (shared && words > 0) {
    const key = textSideKey(texts.slice(0, words), templates);
    await shared.rows.fill(key, words, {
      neurons: C,
      embedDim: D,
      attributions,
      embeddings,
      compute,
    });
  }
  await compute(words, texts.length);
  return new TextSideIndex(texts, templates, attributions, C, embeddings, D);
}
