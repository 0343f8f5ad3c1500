/**
 * Statistics over one neuron's activations in a collection (pure functions on a column of values
 * and the images' category codes): ranking, quantile examples, histogram, quantiles, and the
 * article's conditional-probability view (the share of each category in each activation bucket).
 */
import { NO_CATEGORY } from './store.js';

/** Image ids ordered by value, largest first; ties by the smaller id. NaN values never rank. */
export function rankDescending(values: Float32Array): number[] {
  const ids: number[] = [];
  for (let i = 0; i < values.length; i++) if (!Number.isNaN(values[i])) ids.push(i);
  return ids.sort((a, b) => values[b] - values[a] || a - b);
}

/** The `k` largest (ties by the smaller id), without sorting the whole column. */
export function topK(values: Float32Array, k: number): number[] {
  if (k * 8 >= values.length) return rankDescending(values).slice(0, k);
  // A bounded selection: keep the k best seen, sorted, inserting by binary search.
  const best: number[] = [];
  const better = (a: number, b: number) => values[a] > values[b] || (values[a] === values[b] && a < b);
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i])) continue;
    if (best.length === k && !better(i, best[k - 1])) continue;
    let lo = 0;
    let hi = best.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (better(best[mid], i)) lo = mid + 1;
      else hi = mid;
    }
    best.splice(lo, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}

/**
 * Examples from each quantile band: the images ranked (largest first) are cut into `bins` bands of
 * equal counts, and `perBin` images evenly spaced within each band are taken (Neuronpedia's bins).
 */
export function quantileExamples(
  ranked: ArrayLike<number>,
  bins: number,
  perBin: number,
): { from: number; to: number; ids: number[] }[] {
  const n = ranked.length;
  const out: { from: number; to: number; ids: number[] }[] = [];
  for (let b = 0; b < bins; b++) {
    const start = Math.floor((b * n) / bins);
    const end = Math.floor(((b + 1) * n) / bins);
    const size = end - start;
    const take = Math.min(perBin, size);
    const ids: number[] = [];
    for (let j = 0; j < take; j++) ids.push(ranked[start + Math.floor(((j + 0.5) * size) / take)]);
    // Quantile range of the band, in the ascending sense: the top band is [1 − 1/bins, 1].
    out.push({ from: 1 - (b + 1) / bins, to: 1 - b / bins, ids });
  }
  return out;
}

/**
 * The image ids at the given ranks of rankDescending(values), without sorting the ids: the values
 * are sorted natively (a typed-array sort), and one pass over the column finds, for each value
 * at a wanted rank, the ids holding it in id order (ties rank by the smaller id).
 */
export function idsAtRanks(values: Float32Array, ranks: readonly number[]): number[] {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort();
  const n = sorted.length;
  // The value at descending rank r, and how many larger-or-equal values come before it among ties.
  const wanted = ranks.map((r) => {
    const value = sorted[n - 1 - r];
    let first = n - 1 - r;
    while (first + 1 < n && sorted[first + 1] === value) first++;
    return { value, skip: first - (n - 1 - r) };
  });
  const byValue = new Map<number, number[]>();
  for (const { value } of wanted) byValue.set(value, []);
  for (let i = 0; i < values.length; i++) byValue.get(values[i])?.push(i);
  return wanted.map(({ value, skip }) => (byValue.get(value) as number[])[skip]);
}

/** quantileExamples over the ranking of `values`, finding only the ranks it takes (idsAtRanks). */
export function quantileBands(
  values: Float32Array,
  bins: number,
  perBin: number,
): { from: number; to: number; ids: number[] }[] {
  let n = 0;
  for (const v of values) if (!Number.isNaN(v)) n++;
  // The bands over rank positions (the identity ranking), then the ids at those positions.
  const bands = quantileExamples(
    Uint32Array.from({ length: n }, (_, i) => i),
    bins,
    perBin,
  );
  const ids = idsAtRanks(
    values,
    bands.flatMap((band) => band.ids),
  );
  let at = 0;
  return bands.map((band) => ({ ...band, ids: band.ids.map(() => ids[at++]) }));
}

/** Linear-interpolation quantile (numpy's default) of ascending-sorted values. */
export function quantile(sorted: Float32Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const position = q * (sorted.length - 1);
  const lo = Math.floor(position);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (position - lo);
}

export interface Histogram {
  /** bins + 1 edges, from the minimum to the maximum. */
  edges: number[];
  counts: number[];
}

/** Equal-width bins over [min, max]; the last bin is closed. */
export function histogram(sorted: Float32Array, bins: number): Histogram {
  const counts = new Array<number>(bins).fill(0);
  if (sorted.length === 0) return { edges: [], counts };
  const min = sorted[0];
  const max = sorted[sorted.length - 1];
  const width = (max - min) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? max : min + i * width));
  for (const value of sorted) counts[binOf(value, min, width, bins)]++;
  return { edges, counts };
}

function binOf(value: number, min: number, width: number, bins: number): number {
  if (!(width > 0)) return 0;
  return Math.min(bins - 1, Math.max(0, Math.floor((value - min) / width)));
}

export interface CategoryMean {
  category: string;
  count: number;
  mean: number;
}

export interface Bucket {
  from: number;
  to: number;
  count: number;
  /** Share of each category among the bucket's images (categories with none left out). */
  shares: { category: string; share: number }[];
}

export interface Distribution {
  count: number;
  min: number;
  max: number;
  mean: number;
  /** Share of images whose activation is above the threshold. */
  firing: number;
  threshold: number;
  quantiles: { q: number; value: number }[];
  histogram: Histogram;
  categories: CategoryMean[];
  buckets: Bucket[];
}

export const QUANTILES = [0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1];

/**
 * The distribution of one neuron's values; `codes` are the images' category codes into `names`
 * (NO_CATEGORY for an image without one, counted as "(none)" when some image has none).
 */
export function distribution(
  values: Float32Array,
  codes: Uint32Array,
  names: readonly string[],
  options: { bins: number; buckets: number; threshold: number },
): Distribution {
  const kept: number[] = [];
  for (let i = 0; i < values.length; i++) if (!Number.isNaN(values[i])) kept.push(i);
  const sorted = Float32Array.from(kept, (i) => values[i]).sort();
  const n = sorted.length;
  let sum = 0;
  let firing = 0;
  for (const value of sorted) {
    sum += value;
    if (value > options.threshold) firing++;
  }
  const min = n > 0 ? sorted[0] : NaN;
  const max = n > 0 ? sorted[n - 1] : NaN;
  const label = (code: number) => (code === NO_CATEGORY ? '(none)' : (names[code] ?? '(none)'));
  const sums = new Map<string, { count: number; sum: number }>();
  const bucketWidth = (max - min) / options.buckets;
  const bucketCounts = Array.from({ length: options.buckets }, () => new Map<string, number>());
  const bucketTotals = new Array<number>(options.buckets).fill(0);
  for (const i of kept) {
    const category = label(codes[i]);
    const entry = sums.get(category) ?? { count: 0, sum: 0 };
    entry.count++;
    entry.sum += values[i];
    sums.set(category, entry);
    const b = binOf(values[i], min, bucketWidth, options.buckets);
    bucketTotals[b]++;
    bucketCounts[b].set(category, (bucketCounts[b].get(category) ?? 0) + 1);
  }
  const categories = [...sums.entries()]
    .map(([category, { count, sum: total }]) => ({ category, count, mean: total / count }))
    .sort((a, b) => b.mean - a.mean || a.category.localeCompare(b.category));
  const buckets = bucketCounts.map((counts, b) => ({
    from: n > 0 ? min + b * bucketWidth : NaN,
    to: n > 0 ? (b === options.buckets - 1 ? max : min + (b + 1) * bucketWidth) : NaN,
    count: bucketTotals[b],
    shares: [...counts.entries()]
      .map(([category, count]) => ({ category, share: count / bucketTotals[b] }))
      .sort((x, y) => y.share - x.share || x.category.localeCompare(y.category)),
  }));
  return {
    count: n,
    min,
    max,
    mean: n > 0 ? sum / n : NaN,
    firing: n > 0 ? firing / n : 0,
    threshold: options.threshold,
    quantiles: QUANTILES.map((q) => ({ q, value: quantile(sorted, q) })),
    histogram: histogram(sorted, options.bins),
    categories,
    buckets: n > 0 ? buckets : [],
  };
}

/**
 * The area under the ROC curve of `values` as a score for membership (`member(i)`): the chance that
 * a member's value exceeds a non-member's, ties counting one half (the Mann–Whitney U over n₁·n₀).
 * Both sides sorted (typed-array sorts), then one sweep. Null when either side is empty.
 */
export function rocAuc(values: Float32Array, member: (index: number) => boolean): number | null {
  let members = 0;
  for (let i = 0; i < values.length; i++) if (member(i)) members++;
  const others = values.length - members;
  if (members === 0 || others === 0) return null;
  const inside = new Float32Array(members);
  const outside = new Float32Array(others);
  for (let i = 0, a = 0, b = 0; i < values.length; i++) {
    if (member(i)) inside[a++] = values[i];
    else outside[b++] = values[i];
  }
  inside.sort();
  outside.sort();
  // For each member value x (ascending): the others below x, and those equal to it.
  let wins = 0;
  let below = 0;
  for (let a = 0; a < members; a++) {
    const x = inside[a];
    while (below < others && outside[below] < x) below++;
    let equal = below;
    while (equal < others && outside[equal] === x) equal++;
    wins += below + (equal - below) / 2;
  }
  return wins / (members * others);
}
