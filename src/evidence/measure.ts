/**
 * The multimodality measure of one neuron (docs/neuron-evidence.md): do its three sides name the
 * same concept? Numerical only.
 *
 *   seeing    mean activation of the neuron over each category of a collection (K categories)
 *   reading   its activation on each word of the word index, rastered (V words)
 *   speaking  its component (W·t/|t|)_n of each text of the text-side index (T texts)
 *
 * With c* the seeing side's top category:
 *   speakingRank = 1 + #{texts scoring above c*'s text}   (null when c* is not among the texts)
 *   readingRank  = 1 + #{words scoring above the word c*}  (null when c* is not a word of the index)
 *   agreement    = Spearman's ρ between seeing and speaking, seeing and reading, reading and speaking
 *                  over the shared concepts (the categories that are both words and texts)
 * and the neuron is **multimodal** when c* is among the top K_TOP = 5 of both the speaking and the
 * reading side. The threshold is fixed before any measurement, from chance alone: a side that knew
 * nothing of c* would put it in its top 5 with probability 5/T (5/V), about 2% on the embedded
 * model's 247 words, so both by chance about 0.04%. The score that sorts neurons is the mean of the
 * three ρ (−1 … 1; null when fewer than 3 concepts are shared); a ρ is called significant when it
 * exceeds z₀.₉₉/√(n − 1) (one-sided 1% under independence, the normal approximation of ρ's null law).
 */

export const TOP_K_AGREEMENT = 5;
/** z for a one-sided 1% test. */
export const Z_99 = 2.3263;

/** Average ranks (1 = smallest), ties sharing their mean rank. */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => values[i] - values[j]);
  const ranks = new Float64Array(n);
  for (let start = 0; start < n;) {
    let end = start + 1;
    while (end < n && values[order[end]] === values[order[start]]) end++;
    const rank = (start + end + 1) / 2;
    for (let k = start; k < end; k++) ranks[order[k]] = rank;
    start = end;
  }
  return ranks;
}

/** Pearson's r; null when either side is constant or there are fewer than 3 values. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number | null {
  const n = x.length;
  if (n !== y.length) throw new RangeError('x and y differ in length');
  if (n < 3) return null;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  if (sxx === 0 || syy === 0) return null;
  return sxy / Math.sqrt(sxx * syy);
}

/** Spearman's ρ: Pearson's r of the average ranks. */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number | null {
  return pearson(averageRanks(x), averageRanks(y));
}

/** 1 + how many values exceed values[index] (NaN counts as below everything). */
export function rankAt(values: ArrayLike<number>, index: number): number {
  const v = values[index];
  if (Number.isNaN(v)) return values.length;
  let above = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > v) above++;
  return 1 + above;
}

/** The smallest ρ that is significant at one-sided 1% over n concepts (null when n < 3). */
export function significantRho(n: number): number | null {
  return n >= 3 ? Z_99 / Math.sqrt(n - 1) : null;
}

export interface Side {
  /** The concept names of this side. */
  names: readonly string[];
  /** The neuron's score for each. */
  scores: ArrayLike<number>;
  /** name → position in `names`, when the caller keeps one (else built here). */
  positions?: ReadonlyMap<string, number>;
}

/** name → position, for Side.positions. */
export function positionsOf(names: readonly string[]): Map<string, number> {
  const map = new Map<string, number>();
  names.forEach((name, i) => map.set(name, i));
  return map;
}

export interface Agreement {
  rho: number | null;
  significant: boolean | null;
}

export interface Multimodality {
  /** The seeing side's top category. */
  topCategory: string;
  speakingRank: number | null;
  readingRank: number | null;
  /** How many texts / words each rank is out of. */
  speakingOf: number;
  readingOf: number;
  /** Whether topCategory is in the top TOP_K_AGREEMENT of speaking and of reading. */
  multimodal: boolean;
  /** Concepts shared by the three sides (the ρ are over these). */
  shared: number;
  agreement: { seeingSpeaking: Agreement; seeingReading: Agreement; readingSpeaking: Agreement };
  /** The mean of the three ρ (null when any is null): the value `sort=multimodality` orders by. */
  score: number | null;
}

/** The measure from the three sides of one neuron; null when the seeing side has no category. */
export function multimodality(seeing: Side, reading: Side, speaking: Side): Multimodality | null {
  const K = seeing.names.length;
  if (K === 0) return null;
  let top = -1;
  for (let k = 0; k < K; k++) {
    const v = seeing.scores[k];
    if (Number.isNaN(v)) continue;
    if (top < 0 || v > seeing.scores[top]) top = k;
  }
  if (top < 0) return null;
  const topCategory = seeing.names[top];
  const readingIndex = reading.positions ?? positionsOf(reading.names);
  const speakingIndex = speaking.positions ?? positionsOf(speaking.names);
  const rankIn = (side: Side, index: ReadonlyMap<string, number>) => {
    const at = index.get(topCategory);
    return at === undefined ? null : rankAt(side.scores, at);
  };
  const speakingRank = rankIn(speaking, speakingIndex);
  const readingRank = rankIn(reading, readingIndex);
  const see: number[] = [];
  const read: number[] = [];
  const speak: number[] = [];
  seeing.names.forEach((name, k) => {
    const r = readingIndex.get(name);
    const s = speakingIndex.get(name);
    if (r === undefined || s === undefined) return;
    const values = [seeing.scores[k], reading.scores[r], speaking.scores[s]];
    if (values.some((v) => Number.isNaN(v))) return;
    see.push(values[0]);
    read.push(values[1]);
    speak.push(values[2]);
  });
  const threshold = significantRho(see.length);
  const agreement = (x: number[], y: number[]): Agreement => {
    const rho = spearman(x, y);
    return { rho, significant: rho === null || threshold === null ? null : rho > threshold };
  };
  const seeingSpeaking = agreement(see, speak);
  const seeingReading = agreement(see, read);
  const readingSpeaking = agreement(read, speak);
  const rhos = [seeingSpeaking.rho, seeingReading.rho, readingSpeaking.rho];
  const score = rhos.every((rho) => rho !== null)
    ? (rhos as number[]).reduce((sum, rho) => sum + rho, 0) / 3
    : null;
  const inTop = (rank: number | null) => rank !== null && rank <= TOP_K_AGREEMENT;
  return {
    topCategory,
    speakingRank,
    readingRank,
    speakingOf: speaking.names.length,
    readingOf: reading.names.length,
    multimodal: inTop(speakingRank) && inTop(readingRank),
    shared: see.length,
    agreement: { seeingSpeaking, seeingReading, readingSpeaking },
    score,
  };
}
