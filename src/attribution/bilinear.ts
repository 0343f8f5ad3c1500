/**
 * The bilinear view of CLIP's zero-shot logit (Goh et al., 2021). Ignoring spatial structure,
 *
 *     logit ≈ x_img · W · x_text / (|x_img| |x_text|),    W = (c_proj · v_proj)ᵀ, shape [C, D],
 *
 * so for a text embedding t the vector a = W·t (or W·t/|t|) says how much each of the C neurons of
 * the attention-pool input speaks for the text: its attribution. For an image whose neurons have
 * spatial means x, the per-neuron terms x_i·a_i sum to the bilinear part of the logit.
 */

export type Normalize = 'unit' | 'none';

/**
 * a = W·t, or W·t/|t| with normalize "unit". W is row-major [C, D]. The service computes W·t in
 * onnxruntime, a micro-batch at a time (src/clip/bilinear-graph.ts); this is the product in plain
 * JavaScript, the reference that graph is tested against.
 */
export function attribution(W: Float32Array, t: Float32Array, normalize: Normalize = 'unit'): Float32Array {
  const D = t.length;
  const C = W.length / D;
  const scale = normalize === 'unit' ? 1 / (norm(t) || 1) : 1;
  const a = new Float32Array(C);
  for (let i = 0; i < C; i++) {
    let sum = 0;
    const row = i * D;
    for (let d = 0; d < D; d++) sum += W[row + d] * t[d];
    a[i] = sum * scale;
  }
  return a;
}

/** W·t as it is (normalize "none") or divided by |t| ("unit"), in place. */
export function normalized(product: Float32Array, t: Float32Array, normalize: Normalize): Float32Array {
  if (normalize === 'unit') {
    const scale = 1 / (norm(t) || 1);
    for (let i = 0; i < product.length; i++) product[i] *= scale;
  }
  return product;
}

/** The mean of several attribution vectors (one per prompt template). */
export function meanVector(vectors: readonly Float32Array[]): Float32Array {
  const mean = new Float32Array(vectors[0].length);
  for (const vector of vectors) for (let i = 0; i < mean.length; i++) mean[i] += vector[i];
  for (let i = 0; i < mean.length; i++) mean[i] /= vectors.length;
  return mean;
}

/** Per-neuron contributions x_i·a_i of an image (neuron means x) to a text (attribution a). */
export function contributions(x: Float32Array, a: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = x[i] * a[i];
  return out;
}

export function norm(v: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i] * v[i];
  return Math.sqrt(sum);
}

export function sum(v: Float32Array): number {
  let total = 0;
  for (let i = 0; i < v.length; i++) total += v[i];
  return total;
}

export interface RankedNeuron {
  neuron: number;
  value: number;
  /** value / Σ|a|: the neuron's share of the vector's total absolute mass. */
  share: number;
}

/**
 * The k largest and the k most negative entries of a vector, with their shares of Σ|v|. The order is
 * that of a full sort by value, largest first, ties by index (`bottom` is the tail of that order,
 * reversed), found in one pass that keeps the best k so far: a request for the top 10 of 2,560
 * neurons costs about one comparison per neuron instead of a sort.
 */
export function topAndBottom(v: Float32Array, k: number): { top: RankedNeuron[]; bottom: RankedNeuron[] } {
  let mass = 0;
  for (let i = 0; i < v.length; i++) mass += Math.abs(v[i]);
  const ranked = (i: number): RankedNeuron => ({ neuron: i, value: v[i], share: mass > 0 ? v[i] / mass : 0 });
  const count = Math.max(0, Math.min(k, v.length));
  return { top: ends(v, count, true).map(ranked), bottom: ends(v, count, false).map(ranked) };
}

/**
 * Indices of the `count` largest values, largest first, ties by index (`largestFirst`), or of the
 * `count` smallest, smallest first, ties by index reversed (the tail of that order, read backwards).
 * Indices arrive in increasing order, so among equal values a newcomer goes after the kept ones in
 * the first order and before them in the second: it precedes a kept x exactly when
 * (newcomer > x) === largestFirst.
 */
function ends(v: Float32Array, count: number, largestFirst: boolean): number[] {
  const kept: number[] = [];
  for (let i = 0; count > 0 && i < v.length; i++) {
    const x = v[i];
    if (kept.length === count && x > v[kept[count - 1]] !== largestFirst) continue;
    let at = Math.min(kept.length, count - 1);
    for (; at > 0 && x > v[kept[at - 1]] === largestFirst; at--) kept[at] = kept[at - 1];
    kept[at] = i;
  }
  return kept;
}
