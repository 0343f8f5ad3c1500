/**
 * Scores automatic labels against known labels (the toy model's planted concepts): per family, the
 * share of neurons whose top label is the truth's word (exact) or names the truth's concept (concept:
 * a synonym or a phrase containing a word of that concept counts), for the top 1 and the top 3.
 * Numerical only; the caller gives the word → concept map (for the toy world, world.py's WORD_CONCEPT).
 */

export interface Truth {
  family: string;
  label: string;
}

export interface LabelScore {
  neurons: number;
  top1: number;
  top3: number;
  conceptTop1: number;
  conceptTop3: number;
}

/** The concepts a label names: each of its words' concept ("the colour red" → red; "blue square" → blue, square). */
export function conceptsOf(label: string, wordConcept: Readonly<Record<string, string>>): Set<string> {
  return new Set(label.split(/\s+/).flatMap((word) => (wordConcept[word] ? [wordConcept[word]] : [])));
}

/**
 * Per family (and "all"): counts of neurons whose labels (best first) hit the truth. Neurons
 * without a truth (null) are left out.
 */
export function scoreLabels(
  labels: readonly (readonly string[])[],
  truth: readonly (Truth | null)[],
  wordConcept: Readonly<Record<string, string>>,
): Record<string, LabelScore> {
  const out: Record<string, LabelScore> = {};
  truth.forEach((entry, neuron) => {
    if (!entry) return;
    const ranked = labels[neuron] ?? [];
    const concept = wordConcept[entry.label] ?? entry.label;
    const names = (label: string) => conceptsOf(label, wordConcept).has(concept);
    for (const key of [entry.family, 'all']) {
      const score = (out[key] ??= { neurons: 0, top1: 0, top3: 0, conceptTop1: 0, conceptTop3: 0 });
      score.neurons++;
      if (ranked[0] === entry.label) score.top1++;
      if (ranked.slice(0, 3).includes(entry.label)) score.top3++;
      if (ranked[0] !== undefined && names(ranked[0])) score.conceptTop1++;
      if (ranked.slice(0, 3).some(names)) score.conceptTop3++;
    }
  });
  return out;
}

/** Markdown rows | name | family | neurons | top-1 | top-3 | top-1 concept | top-3 concept |. */
export function scoreRows(name: string, scores: Record<string, LabelScore>): string[] {
  const percent = (k: number, n: number) => `${((100 * k) / n).toFixed(1)}%`;
  return Object.entries(scores)
    .sort(([a], [b]) => (a === 'all' ? 1 : b === 'all' ? -1 : a.localeCompare(b)))
    .map(
      ([family, s]) =>
        `| ${name} | ${family} | ${s.neurons} | ${percent(s.top1, s.neurons)} | ${percent(s.top3, s.neurons)} | ${percent(s.conceptTop1, s.neurons)} | ${percent(s.conceptTop3, s.neurons)} |`,
    );
}
