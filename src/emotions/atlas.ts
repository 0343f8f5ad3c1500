/**
 * The emotion atlas: the compositions of all emotions as a matrix M (emotions × neurons), split into
 * its positive and negative parts [max(M, 0), max(−M, 0)] so it is non-negative, factorised by NMF
 * into 2 or 7 factors (nmf.ts); each emotion's loadings place it on the factors. A seeded UMAP of the
 * L2-normalised compositions gives every emotion a deterministic 2-D position.
 */
import { UMAP } from 'umap-js';
import { badRequest } from '../errors.js';
import { mulberry32 } from '../sparse/cross-validation.js';
import type { Atlas, Composition } from './types.js';
import { NMF } from '../sparse/nmf.js';

/** The atlas of a composition. */
export function buildAtlas(
  composition: Pick<Composition, 'concepts'>,
  factors: number,
  label: (id: number) => string | undefined,
): Atlas {
  const names = Object.keys(composition.concepts);
  const neurons = [
    ...new Set(names.flatMap((name) => composition.concepts[name].neurons.map((n) => n.neuron))),
  ].sort((a, b) => a - b);
  const column = new Map(neurons.map((neuron, c) => [neuron, c]));
  const m = neurons.length;
  const dense = names.map((name) => {
    const row = new Float64Array(m);
    for (const { neuron, weight } of composition.concepts[name].neurons) row[column.get(neuron)!] = weight;
    return row;
  });
  const split = dense.map((row) => {
    const out = new Float64Array(2 * m);
    row.forEach((w, c) => (w > 0 ? (out[c] = w) : (out[m + c] = -w)));
    return out;
  });
  if (factors > Math.min(names.length, 2 * m))
    throw badRequest(`the composition supports at most ${Math.min(names.length, 2 * m)} factors`);
  const nmf = new NMF({ components: factors, seed: 1 });
  const W = nmf.fitTransform(split);
  const layout = embed2d(dense);
  const top = <T>(items: T[], score: (item: T) => number, count: number) =>
    items
      .filter((item) => score(item) > 0)
      .sort((a, b) => score(b) - score(a))
      .slice(0, count);
  return {
    factors,
    objective: nmf.objective_,
    iterations: nmf.nIter_,
    converged: nmf.converged_,
    emotions: names.map((name, i) => ({
      name,
      loadings: Array.from(W[i]),
      x: layout[i][0],
      y: layout[i][1],
    })),
    factorTops: nmf.components_.map((H, r) => ({
      factor: r,
      emotions: top(
        names.map((name, i) => ({ name, loading: W[i][r] })),
        (e) => e.loading,
        8,
      ),
      neurons: top(Array.from(H.keys()), (c) => H[c], 8).map((c) => {
        const neuron = neurons[c % m];
        const entry = { neuron, sign: (c < m ? 1 : -1) as 1 | -1, weight: H[c] };
        const name = label(neuron);
        return name === undefined ? entry : { ...entry, label: name };
      }),
    })),
  };
}

/** Seeded UMAP of L2-normalised rows: the same input always gives the same layout. */
function embed2d(rows: Float64Array[]): number[][] {
  const data = rows.map((row) => {
    const length = Math.hypot(...row) || 1;
    return Array.from(row, (v) => v / length);
  });
  if (data.length < 4) return data.map((_, i) => [i, 0]);
  const umap = new UMAP({
    nComponents: 2,
    nNeighbors: Math.min(15, data.length - 1),
    minDist: 0.1,
    random: mulberry32(42),
  });
  return umap.fit(data);
}
