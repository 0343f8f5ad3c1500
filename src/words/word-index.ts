/**
 * The word index in memory: image-based word embeddings, one row per vocabulary word.
 *
 * Row i is the spatial mean of the neuron maps of the word rastered as an image, x_i ∈ R^C, centred
 * by the mean over the vocabulary: c_i = x_i − μ, μ = (1/V) Σ_i x_i (the article centres on the mean
 * over 10,000 English words). Rows live in one contiguous Float32Array [V, C] with their norms |c_i|
 * precomputed, so a query is one pass of dot products and a partial top-k.
 *
 * Similarity is cosine on the centred rows: cos(c_i, q) = c_i·q / (|c_i| |q|). A mask M (a set of
 * neurons) zeroes those coordinates on both sides before the cosine: the masked row norm is
 * |c_i|² − Σ_{j∈M} c_ij², computed once per mask and kept. A row of NaN (a word the rasteriser
 * refused) is left out of μ and of every ranking. The products c·q go through a
 * MatrixProduct (matrix-product.ts): a JavaScript loop by default, onnxruntime's MatMul once
 * `useProduct` is called.
 */
import { JsProduct, type MatrixProduct } from './matrix-product.js';

export interface Hit {
  word: string;
  index: number;
  score: number;
}

export interface WordActivation {
  word: string;
  /** Uncentred activation x_ic = c_ic + μ_c. */
  activation: number;
  /** Centred value c_ic. */
  centred: number;
}

export class WordIndex {
  readonly rows: number;
  readonly columns: number;
  /** |c_i| for every row. */
  readonly norms: Float32Array;
  private readonly lookup = new Map<string, number>();
  private readonly maskedNorms = new Map<string, Float32Array>();
  private product: MatrixProduct;

  constructor(
    readonly words: readonly string[],
    /** μ, the uncentred mean over the vocabulary [C]. */
    readonly mean: Float32Array,
    /** c = x − μ, row-major [V, C]. */
    readonly centred: Float32Array,
  ) {
    this.rows = words.length;
    this.columns = mean.length;
    if (centred.length !== this.rows * this.columns) {
      throw new RangeError(`index holds ${centred.length} values; expected ${this.rows}×${this.columns}`);
    }
    words.forEach((word, i) => this.lookup.set(word, i));
    this.product = new JsProduct(centred, this.rows, this.columns);
    this.norms = new Float32Array(this.rows);
    for (let i = 0; i < this.rows; i++) {
      this.norms[i] = Math.sqrt(sumOfSquares(centred, i * this.columns, this.columns));
    }
  }

  /**
   * Builds an index from uncentred rows x [V, C]: computes μ (summed in float64) and centres the
   * rows in place (the index keeps `activations` as its centred matrix).
   */
  static fromActivations(words: readonly string[], activations: Float32Array, columns: number): WordIndex {
    const rows = words.length;
    const sums = new Float64Array(columns);
    let counted = 0;
    for (let i = 0; i < rows; i++) {
      if (Number.isNaN(activations[i * columns])) continue; // a word that could not be drawn
      counted++;
      for (let j = 0; j < columns; j++) sums[j] += activations[i * columns + j];
    }
    const mean = Float32Array.from(sums, (sum) => sum / Math.max(1, counted));
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < columns; j++) activations[i * columns + j] -= mean[j];
    }
    return new WordIndex(words, mean, activations);
  }

  indexOf(word: string): number | undefined {
    return this.lookup.get(word);
  }

  row(index: number): Float32Array {
    return this.centred.subarray(index * this.columns, (index + 1) * this.columns);
  }

  /** x − μ for a vector of uncentred activations (a word rastered on the fly). */
  centre(activations: Float32Array): Float32Array {
    return Float32Array.from(activations, (value, j) => value - this.mean[j]);
  }

  /** Computes c·q with `product` from now on (it must compute over this index's `centred`). */
  useProduct(product: MatrixProduct): void {
    this.product = product;
  }

  /**
   * cos(c_i, q) for every row and each query q, with the neurons of `mask` zeroed on both sides.
   * A row whose masked norm is 0 gets cosine 0, as does every row when q is 0 after masking.
   */
  async cosines(queries: readonly Float32Array[], mask?: readonly number[]): Promise<Float32Array[]> {
    const masked = queries.map((query) => {
      const q = Float32Array.from(query);
      for (const j of mask ?? []) q[j] = 0;
      return q;
    });
    const norms = this.normsUnder(mask);
    const products = await this.product.multiply(masked);
    return products.map((out, k) => {
      const qNorm = Math.sqrt(sumOfSquares(masked[k], 0, masked[k].length));
      for (let i = 0; i < this.rows; i++) {
        const denominator = norms[i] * qNorm;
        out[i] = denominator > 0 ? out[i] / denominator : Number.isNaN(denominator) ? NaN : 0;
      }
      return out;
    });
  }

  /** The k rows of highest cosine to `query`, excluding `exclude`. */
  async nearest(
    query: Float32Array,
    k: number,
    options: { mask?: readonly number[]; exclude?: Iterable<number> } = {},
  ): Promise<Hit[]> {
    const [cosines] = await this.cosines([query], options.mask);
    return this.ranked(cosines, k, options.exclude);
  }

  /** The k rows of highest `scores` (one per row), excluding `exclude`, best first. */
  ranked(scores: Float32Array, k: number, exclude: Iterable<number> = []): Hit[] {
    const skip = new Set(exclude);
    return topK(scores, k, (i) => !skip.has(i)).map((i) => ({
      word: this.words[i],
      index: i,
      score: scores[i],
    }));
  }

  /** The words that activate neuron `neuron` most and least (ranked by activation; centring shifts, never reorders). */
  neuronWords(neuron: number, k: number): { top: WordActivation[]; bottom: WordActivation[] } {
    const column = new Float32Array(this.rows);
    for (let i = 0; i < this.rows; i++) column[i] = this.centred[i * this.columns + neuron];
    const entry = (i: number): WordActivation => ({
      word: this.words[i],
      activation: column[i] + this.mean[neuron],
      centred: column[i],
    });
    const negated = column.map((value) => -value);
    return { top: topK(column, k).map(entry), bottom: topK(negated, k).map(entry) };
  }

  /** Row norms with the neurons of `mask` zeroed: √(|c_i|² − Σ_{j∈M} c_ij²), cached per mask. */
  private normsUnder(mask: readonly number[] | undefined): Float32Array {
    if (mask === undefined || mask.length === 0) return this.norms;
    const ids = [...new Set(mask)].sort((a, b) => a - b);
    const key = ids.join(',');
    let norms = this.maskedNorms.get(key);
    if (norms === undefined) {
      norms = new Float32Array(this.rows);
      for (let i = 0; i < this.rows; i++) {
        let squares = this.norms[i] * this.norms[i];
        for (const j of ids) squares -= this.centred[i * this.columns + j] ** 2;
        norms[i] = Math.sqrt(Math.max(0, squares));
      }
      if (this.maskedNorms.size >= 16)
        this.maskedNorms.delete(this.maskedNorms.keys().next().value as string);
      this.maskedNorms.set(key, norms);
    }
    return norms;
  }
}

function sumOfSquares(values: Float32Array, offset: number, length: number): number {
  let sum = 0;
  for (let j = offset; j < offset + length; j++) sum += values[j] * values[j];
  return sum;
}

/**
 * Indices of the k largest values (ties: lower index first), best first, among those `keep`
 * accepts: one pass with a sorted buffer of k, O(V log k) comparisons in the worst case.
 */
export function topK(
  values: ArrayLike<number>,
  k: number,
  keep: (i: number) => boolean = () => true,
): number[] {
  const best: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (Number.isNaN(value)) continue;
    if (best.length === k && value <= values[best[k - 1]]) continue;
    if (!keep(i)) continue;
    let lo = 0;
    let hi = best.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (values[best[mid]] >= value) lo = mid + 1;
      else hi = mid;
    }
    best.splice(lo, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}
