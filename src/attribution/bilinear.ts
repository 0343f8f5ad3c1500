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
  const count = Math.max(0, Math.min(k, v.length));
  // One pass for the mass and both ends: on a cached request this loop over C is the route's own
  // cost (RN50-x4's 2,560 neurons, top 10, at load ≈ 20: 11 µs; 33 µs for the three passes before).
  // Indices arrive in increasing order, so among equal values a newcomer goes after the kept ones
  // at the top and before them at the bottom: it precedes a kept x exactly when newcomer > x at the
  // top, and when !(newcomer > x) at the bottom. Once an end holds `count`, a newcomer must pass
  // its bar (the value of its last entry) to enter.
  const top = new Int32Array(count);
  const bottom = new Int32Array(count);
  let tops = 0;
  let bottoms = 0;
  let topBar = 0;
  let bottomBar = 0;
  let mass = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    mass += Math.abs(x);
    if (count === 0) continue;
    if (tops < count || x > topBar) {
      let at = Math.min(tops, count - 1);
      for (; at > 0 && x > v[top[at - 1]]; at--) top[at] = top[at - 1];
      top[at] = i;
      if (tops < count) tops++;
      if (tops === count) topBar = v[top[count - 1]];
    }
    if (bottoms < count || !(x > bottomBar)) {
      let at = Math.min(bottoms, count - 1);
      for (; at > 0 && !(x > v[bottom[at - 1]]); at--) bottom[at] = bottom[at - 1];
      bottom[at] = i;
      if (bottoms < count) bottoms++;
      if (bottoms === count) bottomBar = v[bottom[count - 1]];
    }
  }
  return { top: rankedRows(v, top, mass), bottom: rankedRows(v, bottom, mass) };
}

/**
 * The rows of `indices`. A function of its own: a closure over the loop's variables (v, mass) would
 * keep them in a context object, which made every step of the loop above several times slower.
 */
function rankedRows(v: Float32Array, indices: Int32Array, mass: number): RankedNeuron[] {
  const rows: RankedNeuron[] = [];
  for (const i of indices) rows.push({ neuron: i, value: v[i], share: mass > 0 ? v[i] / mass : 0 });
  return rows;
}
