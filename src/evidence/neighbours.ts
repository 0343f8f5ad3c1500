/**
 * Cosine neighbours of a neuron, two ways (docs/neuron-evidence.md):
 *
 * - by weights: the cosine between rows of the bilinear W ([C, D], row-major), each row being a
 *   neuron's attribution direction in text-embedding space (the texts it speaks for);
 * - by activations: the cosine between centred activation columns over a collection's images
 *   (x_c − mean_c over the images), which is Pearson's correlation of the two neurons' activations.
 *
 * Plain arithmetic in Float64 on arrays and row chunks; nothing here knows of files or HTTP.
 */

export interface Neighbour {
  neuron: number;
  /** The cosine (by activations: of the centred columns, Pearson's r). */
  cosine: number;
}

/** The Euclidean norm of each row of a row-major [rows, width] matrix. */
export function rowNorms(matrix: Float32Array, rows: number, width: number): Float64Array {
  const norms = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    const base = r * width;
    for (let d = 0; d < width; d++) sum += matrix[base + d] * matrix[base + d];
    norms[r] = Math.sqrt(sum);
  }
  return norms;
}

/**
 * The cosine of row `neuron` of W with every row (NaN where either row is zero). `norms` are W's row
 * norms (rowNorms), computed once per model.
 */
export function weightCosines(W: Float32Array, norms: Float64Array, D: number, neuron: number): Float64Array {
  const C = norms.length;
  const out = new Float64Array(C);
  const base = neuron * D;
  for (let c = 0; c < C; c++) {
    let dot = 0;
    const row = c * D;
    for (let d = 0; d < D; d++) dot += W[row + d] * W[base + d];
    const scale = norms[c] * norms[neuron];
    out[c] = scale > 0 ? dot / scale : NaN;
  }
  return out;
}

/**
 * Per-column mean and centred sum of squares Σᵢ (x_ic − mean_c)² of an images × C matrix that is
 * visited in row chunks, in two passes (the second after `finishMeans`): exact where the one-pass
 * Σx² − n·mean² would cancel.
 */
export class ColumnMoments {
  readonly sums: Float64Array;
  readonly squares: Float64Array;
  private rows = 0;
  private means?: Float64Array;

  constructor(readonly columns: number) {
    this.sums = new Float64Array(columns);
    this.squares = new Float64Array(columns);
  }

  /** Pass 1: `count` rows of `chunk` ([count, C], row-major). */
  addToMeans(chunk: Float32Array, count: number): void {
    const { columns: C, sums } = this;
    for (let r = 0; r < count; r++) {
      const base = r * C;
      for (let c = 0; c < C; c++) sums[c] += chunk[base + c];
    }
    this.rows += count;
  }

  finishMeans(): Float64Array {
    const n = Math.max(1, this.rows);
    this.means = Float64Array.from(this.sums, (sum) => sum / n);
    return this.means;
  }

  /** Pass 2: the same rows again. */
  addToSquares(chunk: Float32Array, count: number): void {
    const means = this.means;
    if (!means) throw new Error('ColumnMoments: finishMeans before addToSquares');
    const { columns: C, squares } = this;
    for (let r = 0; r < count; r++) {
      const base = r * C;
      for (let c = 0; c < C; c++) {
        const centred = chunk[base + c] - means[c];
        squares[c] += centred * centred;
      }
    }
  }

  result(): { images: number; means: Float64Array; squares: Float64Array } {
    if (!this.means) throw new Error('ColumnMoments: finishMeans first');
    return { images: this.rows, means: this.means, squares: this.squares };
  }
}

/**
 * Σᵢ (x_ic − mean_c)·ỹᵢ for every column c, over row chunks of the images × C matrix, where ỹ is the
 * target neuron's centred column (one value per image): the numerators of the correlations.
 */
export class CentredDots {
  readonly dots: Float64Array;

  constructor(
    private readonly means: Float64Array,
    private readonly target: Float64Array,
  ) {
    this.dots = new Float64Array(means.length);
  }

  /** `count` rows of `chunk` ([count, C], row-major), the images `start` … `start + count − 1`. */
  add(chunk: Float32Array, start: number, count: number): void {
    const { means, dots, target } = this;
    const C = means.length;
    for (let r = 0; r < count; r++) {
      const y = target[start + r];
      if (y === 0) continue;
      const base = r * C;
      for (let c = 0; c < C; c++) dots[c] += (chunk[base + c] - means[c]) * y;
    }
  }
}

/** The cosines of the centred columns from their numerators and sums of squares (NaN for a constant column). */
export function correlations(dots: Float64Array, squares: Float64Array, targetSquares: number): Float64Array {
  return Float64Array.from(dots, (dot, c) => {
    const scale = Math.sqrt(squares[c] * targetSquares);
    return scale > 0 ? Math.max(-1, Math.min(1, dot / scale)) : NaN;
  });
}

/** The k largest cosines other than the neuron itself, highest first (ties by neuron id; NaN left out). */
export function topNeighbours(cosines: Float64Array, neuron: number, k: number): Neighbour[] {
  const kept: Neighbour[] = [];
  for (let c = 0; c < cosines.length; c++) {
    if (c === neuron || Number.isNaN(cosines[c])) continue;
    kept.push({ neuron: c, cosine: cosines[c] });
  }
  kept.sort((a, b) => b.cosine - a.cosine || a.neuron - b.neuron);
  return kept.slice(0, k);
}
