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

/**
 * Per-column mean and centred sum of squares, as ColumnMoments's, in one pass over groups of rows
 * (column-major blocks, or chunks of row-major rows): each group's mean and centred squares in two
 * passes over the group (a column's run of a block is contiguous and small), merged into the totals
 * by Chan et al.'s pairwise update, exact where Σx² − n·mean² would cancel.
 */
export class GroupMoments {
  private readonly means: Float64Array;
  private readonly squares: Float64Array;
  private rows = 0;

  constructor(readonly columns: number) {
    this.means = new Float64Array(columns);
    this.squares = new Float64Array(columns);
  }

  private merge(c: number, count: number, mean: number, squares: number): void {
    const n = this.rows;
    const delta = mean - this.means[c];
    const total = n + count;
    this.means[c] += (delta * count) / total;
    this.squares[c] += squares + (delta * delta * n * count) / total;
  }

  /** A column-major block ([C, rows]). */
  addBlock(block: Float32Array, rows: number): void {
    if (rows === 0) return;
    for (let c = 0; c < this.columns; c++) {
      const base = c * rows;
      let sum = 0;
      for (let r = 0; r < rows; r++) sum += block[base + r];
      const mean = sum / rows;
      let squares = 0;
      for (let r = 0; r < rows; r++) {
        const centred = block[base + r] - mean;
        squares += centred * centred;
      }
      this.merge(c, rows, mean, squares);
    }
    this.rows += rows;
  }

  /** `count` row-major rows ([count, C]). */
  addRows(chunk: Float32Array, count: number): void {
    if (count === 0) return;
    const C = this.columns;
    const sums = new Float64Array(C);
    for (let r = 0; r < count; r++) {
      const base = r * C;
      for (let c = 0; c < C; c++) sums[c] += chunk[base + c];
    }
    const means = Float64Array.from(sums, (sum) => sum / count);
    const squares = new Float64Array(C);
    for (let r = 0; r < count; r++) {
      const base = r * C;
      for (let c = 0; c < C; c++) {
        const centred = chunk[base + c] - means[c];
        squares[c] += centred * centred;
      }
    }
    for (let c = 0; c < C; c++) this.merge(c, count, means[c], squares[c]);
    this.rows += count;
  }

  result(): { images: number; means: Float64Array; squares: Float64Array } {
    return { images: this.rows, means: this.means, squares: this.squares };
  }
}

/**
 * The same numerators from the column-major blocks (columns.ts: block b holds its B rows as C runs of
 * B contiguous values) and the row-major rows after them: Σᵢ x_ic·ỹᵢ, each column's run summed in a
 * local (no store per product), then Σᵢ (x_ic − mean_c)·ỹᵢ = Σᵢ x_ic·ỹᵢ − mean_c·Σᵢ ỹᵢ (Σ ỹ is
 * zero up to rounding: the target is centred on the same images).
 */
export class BlockDots {
  private readonly raw: Float64Array;

  constructor(
    private readonly means: Float64Array,
    private readonly target: Float64Array,
  ) {
    this.raw = new Float64Array(means.length);
  }

  /** A column-major block ([C, rows]) of the images `start` … `start + rows − 1`. */
  addBlock(block: Float32Array, start: number, rows: number): void {
    const { raw, target } = this;
    const C = raw.length;
    const y = target.subarray(start, start + rows);
    let c = 0;
    // Four columns at a time: each target value loaded once for four products.
    for (; c + 3 < C; c += 4) {
      const b0 = c * rows;
      const b1 = b0 + rows;
      const b2 = b1 + rows;
      const b3 = b2 + rows;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let r = 0; r < rows; r++) {
        const v = y[r];
        s0 += block[b0 + r] * v;
        s1 += block[b1 + r] * v;
        s2 += block[b2 + r] * v;
        s3 += block[b3 + r] * v;
      }
      raw[c] += s0;
      raw[c + 1] += s1;
      raw[c + 2] += s2;
      raw[c + 3] += s3;
    }
    for (; c < C; c++) {
      const base = c * rows;
      let sum = 0;
      for (let r = 0; r < rows; r++) sum += block[base + r] * y[r];
      raw[c] += sum;
    }
  }

  /** `count` row-major rows ([count, C]) of the images `start` … `start + count − 1`. */
  addRows(chunk: Float32Array, start: number, count: number): void {
    const { raw, target } = this;
    const C = raw.length;
    for (let r = 0; r < count; r++) {
      const y = target[start + r];
      if (y === 0) continue;
      const base = r * C;
      for (let c = 0; c < C; c++) raw[c] += chunk[base + c] * y;
    }
  }

  /** The centred numerators, as CentredDots's. */
  get dots(): Float64Array {
    let sumY = 0;
    for (let i = 0; i < this.target.length; i++) sumY += this.target[i];
    return Float64Array.from(this.raw, (dot, c) => dot - this.means[c] * sumY);
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
