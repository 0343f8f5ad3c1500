/**
 * The service's emotion atlas (src/emotions/atlas.ts: the compositions split into positive and
 * negative parts, NMF by HALS in src/sparse/nmf.ts, 7 factors, seed 1) against the atlas the article
 * published (../shared/reference/rn50x4/emotion-atlas.json), both computed from the article's own
 * published sparse codes (emotion-sparse-codes.json, level "40", the level of its figures). A factor
 * of ours matches one of the article's when their loadings over the 121 words the two share
 * correlate at r ≥ 0.66, under the one-to-one pairing of the factors with the largest total r.
 * Measured figures and what explains the unmatched factors: docs/emotion-compositions.md.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { buildAtlas } from '../src/emotions/atlas.js';
import type { Composition } from '../src/emotions/types.js';
import { NMF } from '../src/sparse/nmf.js';
import { pearson } from './helpers/toyworld.js';
import { repoRoot } from './helpers/tiny-model.js';

const REFERENCE = path.resolve(repoRoot, '../shared/reference/rn50x4');
const FACTORS = 7;
const MATCH_R = 0.66;
/** Measured: 3 of 7 (r 0.85, 0.81, 0.66; the other four 0.21 and below). */
const MATCHED_AS_SERVED = 3;
/** Measured: 5 of 7 when every code is first scaled to unit length (r 0.81 0.80 0.78 0.71 0.71). */
const MATCHED_UNIT_ROWS = 5;

type Code = [weight: number, neuron: number][];
const codes = (
  JSON.parse(readFileSync(path.join(REFERENCE, 'emotion-sparse-codes.json'), 'utf8')) as Record<
    string,
    Record<string, Code>
  >
)['40'];
const published = (
  JSON.parse(readFileSync(path.join(REFERENCE, 'emotion-atlas.json'), 'utf8')) as {
    grid: { name: string; components: number[] }[];
  }
).grid;

function permutations(n: number): number[][] {
  if (n === 1) return [[0]];
  return permutations(n - 1).flatMap((p) =>
    Array.from({ length: p.length + 1 }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]),
  );
}
const PAIRINGS = permutations(FACTORS);

/** The matched pairs' r, largest first, under the pairing with the largest total r. */
function matchedCorrelations(loadings: Map<string, number[]>): number[] {
  const common = published.filter((entry) => loadings.has(entry.name));
  const R = Array.from({ length: FACTORS }, (_, i) =>
    Array.from({ length: FACTORS }, (_, j) =>
      pearson(
        common.map((entry) => loadings.get(entry.name)![i]),
        common.map((entry) => entry.components[j]),
      ),
    ),
  );
  let best = PAIRINGS[0];
  let bestTotal = -Infinity;
  for (const pairing of PAIRINGS) {
    const total = pairing.reduce((sum, j, i) => sum + R[i][j], 0);
    if (total > bestTotal) [best, bestTotal] = [pairing, total];
  }
  return best.map((j, i) => R[i][j]).sort((a, b) => b - a);
}

function composition(transform: (code: Code) => Code = (code) => code): Pick<Composition, 'concepts'> {
  const concepts: Record<string, { neurons: { neuron: number; weight: number }[] }> = {};
  for (const [name, code] of Object.entries(codes))
    concepts[name] = { neurons: transform(code).map(([weight, neuron]) => ({ neuron, weight })) };
  return { concepts } as unknown as Pick<Composition, 'concepts'>;
}

t.test('the published codes and atlas share 121 words', async (t) => {
  const shared = published.filter((entry) => entry.name in codes);
  t.equal(Object.keys(codes).length, 126);
  t.equal(shared.length, 121, 'every atlas word has a code');
});

t.test(`the service's atlas matches ${MATCHED_AS_SERVED} of the article's 7 factors`, async (t) => {
  const atlas = buildAtlas(composition(), FACTORS, () => undefined);
  const r = matchedCorrelations(new Map(atlas.emotions.map((e) => [e.name, e.loadings])));
  t.comment(`matched r: ${r.map((x) => x.toFixed(3)).join(' ')}`);
  t.equal(r.filter((x) => x >= MATCH_R).length, MATCHED_AS_SERVED, `factors at r >= ${MATCH_R}`);
  // What holds it down: factors spent on one to three words whose codes put a large weight on a
  // neuron no other word uses.
  const narrow = atlas.factorTops.filter((top) => {
    const loads = atlas.emotions.map((e) => e.loadings[top.factor]);
    const max = Math.max(...loads);
    return loads.filter((v) => v > 0.1 * max).length <= 3;
  });
  t.comment(`factors loading on at most 3 words (> 10 % of their largest): ${narrow.length}`);
  t.equal(narrow.length, 3, 'three factors serve 1-3 words each');
});

t.test(`with every code scaled to unit length first: ${MATCHED_UNIT_ROWS} of 7`, async (t) => {
  const unit = (code: Code): Code => {
    const length = Math.hypot(...code.map(([w]) => w)) || 1;
    return code.map(([w, neuron]) => [w / length, neuron]);
  };
  const { concepts } = composition(unit) as unknown as {
    concepts: Record<string, { neurons: { neuron: number; weight: number }[] }>;
  };
  // The atlas's own split into positive and negative parts, on the scaled codes.
  const names = Object.keys(concepts);
  const neurons = [...new Set(names.flatMap((n) => concepts[n].neurons.map((x) => x.neuron)))].sort(
    (a, b) => a - b,
  );
  const column = new Map(neurons.map((neuron, c) => [neuron, c]));
  const m = neurons.length;
  const X = names.map((name) => {
    const row = new Float64Array(2 * m);
    for (const { neuron, weight } of concepts[name].neurons)
      row[column.get(neuron)! + (weight > 0 ? 0 : m)] = Math.abs(weight);
    return row;
  });
  const W = new NMF({ components: FACTORS, seed: 1 }).fitTransform(X);
  const r = matchedCorrelations(new Map(names.map((name, i) => [name, Array.from(W[i])])));
  t.comment(`matched r: ${r.map((x) => x.toFixed(3)).join(' ')}`);
  t.equal(r.filter((x) => x >= MATCH_R).length, MATCHED_UNIT_ROWS, `factors at r >= ${MATCH_R}`);
});
