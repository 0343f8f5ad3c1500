/**
 * Automatic neuron labels in the manner of CLIP-Dissect (Oikarinen & Weng, "CLIP-Dissect: Automatic
 * Description of Neuron Representations in Deep Vision Networks", ICLR 2023): a neuron is described by
 * the concept whose image–text similarity pattern best matches the images that activate it most,
 * scored by soft-WPMI. Numerical only: it knows nothing of HTTP, of collections or of the model.
 *
 * Inputs, over N probe images, S concepts and C neurons:
 *   - sim[i, s]  the cosine of image i's embedding and concept s's text embedding;
 *   - act[i, c]  neuron c's activation on image i (the spatial mean of its map).
 *
 * soft-WPMI (the paper's §3, "soft weighted pointwise mutual information"):
 *   P[i, s]       = softmax_s(a · sim[i, s])                 the chance that concept s describes image i
 *   D_c           = neuron c's m most activating images i_1, …, i_m (highest first, ties by smaller id)
 *   p_r           = p_start − (r/m)·(p_start − p_end), r = 0 … m−1   the chance that the r-th is in the
 *                   neuron's concept set (the highest-ranked images count most)
 *   log P(s | c)  = Σ_r log(1 + p_r·(P[i_r, s] − 1) + ε)      soft "every image of D_c shows s"
 *   log P(s)      = logsumexp_c log P(s | c) − log C          the same averaged over the layer's neurons
 *   WPMI[c, s]    = log P(s | c) − λ · log P(s)
 * with the paper's defaults a = 10, λ = 1, p_start = 0.998, p_end = 0.97, ε = 1e-7; m (its top_k) is
 * 100 for ImageNet-sized probes and 20 here by default (a toy probe has about 24 images a concept).
 * The label of neuron c is argmax_s WPMI[c, s].
 */

export interface SoftWpmiOptions {
  /** m: how many of the neuron's most activating images form its set D_c. */
  topK: number;
  /** a: the softmax temperature over concepts. */
  a: number;
  /** λ: the weight of the concept's prior log P(s). */
  lambda: number;
  pStart: number;
  pEnd: number;
  /** ε added inside the log. */
  minProb: number;
}

export const SOFT_WPMI_DEFAULTS: SoftWpmiOptions = {
  topK: 20,
  a: 10,
  lambda: 1,
  pStart: 0.998,
  pEnd: 0.97,
  minProb: 1e-7,
};

/** cos(image_i, text_s) for every pair: [N, S] from embeddings [N, D] and [S, D] (rows of zeros give 0). */
export function cosineMatrix(images: Float32Array, texts: Float32Array, D: number): Float32Array {
  const N = images.length / D;
  const S = texts.length / D;
  const unit = (rows: Float32Array, count: number) => {
    const out = new Float64Array(rows.length);
    for (let r = 0; r < count; r++) {
      let squares = 0;
      for (let j = 0; j < D; j++) squares += rows[r * D + j] ** 2;
      const norm = Math.sqrt(squares);
      for (let j = 0; j < D; j++) out[r * D + j] = norm > 0 ? rows[r * D + j] / norm : 0;
    }
    return out;
  };
  const u = unit(images, N);
  const v = unit(texts, S);
  const out = new Float32Array(N * S);
  for (let i = 0; i < N; i++) {
    for (let s = 0; s < S; s++) {
      let dot = 0;
      for (let j = 0; j < D; j++) dot += u[i * D + j] * v[s * D + j];
      out[i * S + s] = dot;
    }
  }
  return out;
}

/** Row-wise softmax of a·x over the S columns of an [N, S] matrix (float64). */
export function softmaxRows(x: Float32Array, S: number, a: number): Float64Array {
  const N = x.length / S;
  const out = new Float64Array(x.length);
  for (let i = 0; i < N; i++) {
    let max = -Infinity;
    for (let s = 0; s < S; s++) max = Math.max(max, a * x[i * S + s]);
    let sum = 0;
    for (let s = 0; s < S; s++) {
      const e = Math.exp(a * x[i * S + s] - max);
      out[i * S + s] = e;
      sum += e;
    }
    for (let s = 0; s < S; s++) out[i * S + s] /= sum;
  }
  return out;
}

/** The m ids of the largest values of column c of an [N, C] matrix, highest first, ties by smaller id. */
export function topRows(act: Float32Array, C: number, c: number, m: number): number[] {
  const N = act.length / C;
  const ids = Array.from({ length: N }, (_, i) => i);
  const value = (i: number) => {
    const v = act[i * C + c];
    return Number.isNaN(v) ? -Infinity : v;
  };
  ids.sort((i, j) => value(j) - value(i) || i - j);
  return ids.slice(0, Math.min(m, N));
}

/**
 * soft-WPMI of every neuron and concept: [C, S] (float64), from sim [N, S] and act [N, C]. See the
 * module comment for the formula.
 */
export function softWpmi(
  sim: Float32Array,
  act: Float32Array,
  S: number,
  C: number,
  options: Partial<SoftWpmiOptions> = {},
): Float64Array {
  const { topK, a } = { ...SOFT_WPMI_DEFAULTS, ...options };
  const N = sim.length / S;
  if (act.length !== N * C) throw new RangeError(`act holds ${act.length} values; expected ${N}×${C}`);
  const P = softmaxRows(sim, S, a);
  const top = Array.from({ length: C }, (_, c) => topRows(act, C, c, topK));
  return softWpmiOfTop(top, (i) => P.subarray(i * S, (i + 1) * S), S, options);
}

/**
 * soft-WPMI from each neuron's ranked top images (`top[c]`, at most m ids, highest first) and the
 * concept probabilities P[i, ·] = softmax(a · sim[i, ·]) of the images they name (`probabilities`).
 * A collection too large to hold [N, C] streams its rows to find the top ids, then asks for the
 * probabilities of those images only.
 */
export function softWpmiOfTop(
  top: readonly (readonly number[])[],
  probabilities: (image: number) => ArrayLike<number>,
  S: number,
  options: Partial<SoftWpmiOptions> = {},
): Float64Array {
  const logGiven = new Float64Array(top.length * S);
  logGivenOfTop(top, probabilities, S, options, 0, top.length, logGiven);
  return wpmiOfLogGiven(logGiven, top.length, S, options);
}

/**
 * log P(s | c) for neurons c0 … c1 − 1 into `logGiven` [C, S] (the first step of softWpmiOfTop; a
 * caller may run it in blocks of neurons and hand the event loop back between them).
 */
export function logGivenOfTop(
  top: readonly (readonly number[])[],
  probabilities: (image: number) => ArrayLike<number>,
  S: number,
  options: Partial<SoftWpmiOptions>,
  c0: number,
  c1: number,
  logGiven: Float64Array,
): void {
  const { topK, pStart, pEnd, minProb } = { ...SOFT_WPMI_DEFAULTS, ...options };
  for (let c = c0; c < c1; c++) {
    const rows = top[c].slice(0, topK);
    const m = rows.length;
    const out = logGiven.subarray(c * S, (c + 1) * S);
    out.fill(0);
    rows.forEach((i, r) => {
      const p = pStart - (r / m) * (pStart - pEnd);
      const P = probabilities(i);
      for (let s = 0; s < S; s++) out[s] += Math.log(1 + p * (P[s] - 1) + minProb);
    });
  }
}

/** WPMI[c, s] = log P(s | c) − λ log P(s), with log P(s) = logsumexp_c log P(s | c) − log C. */
export function wpmiOfLogGiven(
  logGiven: Float64Array,
  C: number,
  S: number,
  options: Partial<SoftWpmiOptions> = {},
): Float64Array {
  const { lambda } = { ...SOFT_WPMI_DEFAULTS, ...options };
  if (C === 0 || S === 0) return new Float64Array(C * S);
  const logPrior = new Float64Array(S);
  for (let s = 0; s < S; s++) {
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, logGiven[c * S + s]);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(logGiven[c * S + s] - max);
    logPrior[s] = max + Math.log(sum) - Math.log(C);
  }
  const out = new Float64Array(C * S);
  for (let c = 0; c < C; c++) {
    for (let s = 0; s < S; s++) out[c * S + s] = logGiven[c * S + s] - lambda * logPrior[s];
  }
  return out;
}

/** One softmax row: P[s] = softmax(a · sim[s]) (float64). */
export function softmaxRow(sim: ArrayLike<number>, a: number): Float64Array {
  return softmaxRows(Float32Array.from(sim), sim.length, a);
}

/**
 * A running top-m per column of an [N, C] matrix visited in chunks of rows: keeps, for each column,
 * the m largest values and their row ids (ties by the smaller id, NaN never kept).
 */
export class ColumnTops {
  private readonly values: Float64Array;
  private readonly ids: Int32Array;
  private readonly counts: Int32Array;

  constructor(
    readonly columns: number,
    readonly m: number,
  ) {
    this.values = new Float64Array(columns * m);
    this.ids = new Int32Array(columns * m);
    this.counts = new Int32Array(columns);
  }

  /** Visits `count` rows [count, C] whose first row is row `start`. */
  add(rows: Float32Array, start: number, count: number): void {
    const { columns: C, m } = this;
    for (let r = 0; r < count; r++) {
      const id = start + r;
      for (let c = 0; c < C; c++) {
        const v = rows[r * C + c];
        if (Number.isNaN(v)) continue;
        const n = this.counts[c];
        const base = c * m;
        // Rows come in ascending id, so an equal value never displaces a kept one.
        if (n === m && v <= this.values[base + m - 1]) continue;
        let at = n === m ? m - 1 : n;
        while (at > 0 && this.values[base + at - 1] < v) {
          this.values[base + at] = this.values[base + at - 1];
          this.ids[base + at] = this.ids[base + at - 1];
          at--;
        }
        this.values[base + at] = v;
        this.ids[base + at] = id;
        if (n < m) this.counts[c] = n + 1;
      }
    }
  }

  /** Column c's kept row ids, highest value first. */
  top(c: number): number[] {
    return Array.from(this.ids.subarray(c * this.m, c * this.m + this.counts[c]));
  }
}
