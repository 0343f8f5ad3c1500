/**
 * The objective of the maximal-text search. For a text embedding t and a direction d over the C
 * neurons (a one-hot d = e_i for neuron i),
 *
 *     f(t) = d · (W·t / |t|) = (Wᵀd) · t / |t| = u · t / |t|,     u = Wᵀd  (length D),
 *
 * so u is computed once per search and each candidate costs one dot product of length D instead of
 * the C·D of the full attribution vector W·t. For a neuron, f is exactly the value that
 * /v1/attribution/text reports for that neuron with normalize "unit".
 */

/** W row-major [C, D]; d of length C. Returns u = Wᵀd (accumulated in float64). */
export function projectDirection(W: Float32Array, d: ArrayLike<number>, embedDim: number): Float32Array {
  const C = W.length / embedDim;
  if (d.length !== C) throw new RangeError(`direction has ${d.length} entries; the model has ${C} neurons`);
  const u = new Float64Array(embedDim);
  for (let i = 0; i < C; i++) {
    const di = d[i];
    if (di === 0) continue;
    const row = i * embedDim;
    for (let k = 0; k < embedDim; k++) u[k] += di * W[row + k];
  }
  return Float32Array.from(u);
}

/** u = row i of W: the projection for a single neuron, without building the one-hot d. */
export function neuronProjection(W: Float32Array, neuron: number, embedDim: number): Float32Array {
  const C = W.length / embedDim;
  if (!Number.isInteger(neuron) || neuron < 0 || neuron >= C) {
    throw new RangeError(`neuron ${neuron} is out of range (0 to ${C - 1})`);
  }
  return W.slice(neuron * embedDim, (neuron + 1) * embedDim);
}

/** f(t) = u·t/|t| (0 for a zero embedding). */
export function objectiveValue(u: Float32Array, t: Float32Array): number {
  let dot = 0;
  let squares = 0;
  for (let k = 0; k < t.length; k++) {
    dot += u[k] * t[k];
    squares += t[k] * t[k];
  }
  return squares > 0 ? dot / Math.sqrt(squares) : 0;
}
