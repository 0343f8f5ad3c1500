/**
 * The numerical parts of neuron evidence (src/evidence/) against independent references: soft-WPMI
 * (CLIP-Dissect) against a numpy implementation written here from the paper's formula, on a small
 * random problem; Spearman's ρ and average ranks against scipy; the streaming top-m (ColumnTops)
 * against a full sort; the multimodality measure on hand-made sides; the numerators of neighbours
 * by activations from column-major blocks (BlockDots) against the row-major two-pass CentredDots.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import {
  ColumnTops,
  cosineMatrix,
  logGivenOfTop,
  softWpmi,
  softWpmiOfTop,
  softmaxRows,
  topRows,
  wpmiOfLogGiven,
} from '../src/evidence/dissect.js';
import { averageRanks, multimodality, significantRho, spearman } from '../src/evidence/measure.js';
import { BlockDots, CentredDots, ColumnMoments, GroupMoments } from '../src/evidence/neighbours.js';
import { TextSideIndex } from '../src/evidence/text-index.js';
import { transpose } from '../src/collections/columns.js';

/** A small deterministic generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function python(script: string, input: unknown): unknown {
  const run = spawnSync('/usr/bin/python3', ['-c', script], {
    input: JSON.stringify(input),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.status !== 0) throw new Error(`python failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

// The paper's soft-WPMI (Oikarinen & Weng 2023, §3), written from the formula: P = softmax(a·sim)
// over concepts; each neuron's top-m images by activation (stable sort: ties by the smaller id);
// weights p_r = p_start − r/m·(p_start − p_end); log P(s|c) = Σ_r log(1 + p_r(P[i_r,s] − 1) + ε);
// log P(s) = log mean_c exp(log P(s|c)); WPMI = log P(s|c) − λ log P(s).
const NUMPY_SOFT_WPMI = `
import json, sys
import numpy as np
d = json.load(sys.stdin)
N, S, C, D = d["N"], d["S"], d["C"], d["D"]
img = np.array(d["images"], dtype=np.float64).reshape(N, D)
txt = np.array(d["texts"], dtype=np.float64).reshape(S, D)
act = np.array(d["act"], dtype=np.float64).reshape(N, C)
o = d["options"]
img = img / np.linalg.norm(img, axis=1, keepdims=True)
txt = txt / np.linalg.norm(txt, axis=1, keepdims=True)
sim = img @ txt.T
z = o["a"] * sim
z = z - z.max(axis=1, keepdims=True)
P = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
m = min(o["topK"], N)
p = o["pStart"] - np.arange(m) / m * (o["pStart"] - o["pEnd"])
given = np.zeros((C, S))
for c in range(C):
    top = np.argsort(-act[:, c], kind="stable")[:m]
    given[c] = np.log(1 + p[:, None] * (P[top] - 1) + o["minProb"]).sum(axis=0)
mx = given.max(axis=0)
prior = mx + np.log(np.exp(given - mx).sum(axis=0)) - np.log(C)
wpmi = given - o["lambda"] * prior
print(json.dumps({"sim": sim.ravel().tolist(), "wpmi": wpmi.ravel().tolist()}))
`;

t.test('soft-WPMI equals a numpy implementation of the paper’s formula', async (t) => {
  const rand = random(19);
  const [N, S, C, D] = [60, 9, 7, 5];
  const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const images = Float32Array.from({ length: N * D }, gauss);
  const texts = Float32Array.from({ length: S * D }, gauss);
  // ReLU-like activations with exact ties (zeros) so the tie order is exercised.
  const act = Float32Array.from({ length: N * C }, () => Math.max(0, gauss()));
  for (const options of [
    { topK: 10, a: 10, lambda: 1, pStart: 0.998, pEnd: 0.97, minProb: 1e-7 },
    { topK: 45, a: 3, lambda: 0.6, pStart: 0.99, pEnd: 0.8, minProb: 1e-7 },
  ]) {
    const sim = cosineMatrix(images, texts, D);
    const ours = softWpmi(sim, act, S, C, options);
    const ref = python(NUMPY_SOFT_WPMI, {
      N,
      S,
      C,
      D,
      images: [...images],
      texts: [...texts],
      act: [...act],
      options,
    }) as { sim: number[]; wpmi: number[] };
    let simErr = 0;
    ref.sim.forEach((v, i) => (simErr = Math.max(simErr, Math.abs(v - sim[i]))));
    t.ok(simErr < 1e-6, `cosines within 1e-6 of numpy (max error ${simErr.toExponential(2)})`);
    let err = 0;
    let scale = 0;
    ref.wpmi.forEach((v, i) => {
      err = Math.max(err, Math.abs(v - ours[i]));
      scale = Math.max(scale, Math.abs(v));
    });
    // float32 cosines (ours) against float64 (numpy), through exp(a·sim): a relative 1e-5 is ample.
    t.ok(
      err < 1e-5 * scale,
      `topK ${options.topK}: soft-WPMI within ${err.toExponential(2)} of numpy (scale ${scale.toFixed(2)})`,
    );
    // The argmax concept per neuron is the label; it must agree exactly.
    for (let c = 0; c < C; c++) {
      const argmax = (v: ArrayLike<number>) => {
        let best = 0;
        for (let s = 1; s < S; s++) if (v[c * S + s] > v[c * S + best]) best = s;
        return best;
      };
      t.equal(argmax(ours), argmax(ref.wpmi), `neuron ${c}: same label`);
    }
    // The streaming form (ColumnTops over chunks, then softWpmiOfTop) gives the same numbers.
    const tops = new ColumnTops(C, options.topK);
    for (let start = 0; start < N; start += 7) {
      const count = Math.min(7, N - start);
      tops.add(act.subarray(start * C, (start + count) * C), start, count);
    }
    const P = softmaxRows(sim, S, options.a);
    const streamed = softWpmiOfTop(
      Array.from({ length: C }, (_, c) => tops.top(c)),
      (i) => P.subarray(i * S, (i + 1) * S),
      S,
      options,
    );
    t.same([...streamed], [...ours], 'streamed top-m gives identical soft-WPMI');
    // In blocks of neurons (as the service runs it, yielding between blocks): identical again.
    const logGiven = new Float64Array(C * S);
    const tops2 = Array.from({ length: C }, (_, c) => tops.top(c));
    for (let c0 = 0; c0 < C; c0 += 3) {
      logGivenOfTop(
        tops2,
        (i) => P.subarray(i * S, (i + 1) * S),
        S,
        options,
        c0,
        Math.min(C, c0 + 3),
        logGiven,
      );
    }
    t.same([...wpmiOfLogGiven(logGiven, C, S, options)], [...ours], 'block-wise soft-WPMI is identical');
  }
});

t.test('ColumnTops keeps the same ids as a full stable sort, ties and NaN included', async (t) => {
  const rand = random(3);
  const [N, C, m] = [300, 5, 17];
  const act = Float32Array.from({ length: N * C }, () => {
    const r = rand();
    return r < 0.05 ? NaN : r < 0.4 ? 0 : Math.round(r * 20) / 20;
  });
  const tops = new ColumnTops(C, m);
  for (let start = 0; start < N; start += 64) {
    const count = Math.min(64, N - start);
    tops.add(act.subarray(start * C, (start + count) * C), start, count);
  }
  for (let c = 0; c < C; c++) t.same(tops.top(c), topRows(act, C, c, m), `column ${c}`);
});

t.test('a neuron’s top and bottom texts are those of a full stable sort, ties included', async (t) => {
  const rand = random(5);
  const [T, C, D, k] = [400, 3, 2, 7];
  const attributions = Float32Array.from({ length: T * C }, () => Math.round(rand() * 12) / 12 - 0.5);
  const texts = Array.from({ length: T }, (_, i) => `text ${i}`);
  const index = new TextSideIndex(texts, ['{}'], attributions, C, new Float32Array(T * D), D);
  for (let c = 0; c < C; c++) {
    const column = Array.from({ length: T }, (_, i) => attributions[i * C + c]);
    const ids = column.map((_, i) => i);
    const down = [...ids].sort((i, j) => column[j] - column[i] || i - j).slice(0, k);
    const up = [...ids].sort((i, j) => column[i] - column[j] || i - j).slice(0, k);
    t.same(
      index.top(c, k).map(({ text }) => text),
      down.map((i) => texts[i]),
      `neuron ${c}: top`,
    );
    t.same(
      index.bottom(c, k).map(({ text }) => text),
      up.map((i) => texts[i]),
      `neuron ${c}: bottom`,
    );
  }
});

t.test('Spearman’s ρ and average ranks equal scipy’s', async (t) => {
  const rand = random(5);
  const cases = Array.from({ length: 6 }, (_, k) => {
    const n = 5 + k * 7;
    const x = Array.from({ length: n }, () => Math.round(rand() * 6)); // many ties
    const y = x.map((v) => (k % 2 === 0 ? v + rand() * 4 : -v + rand() * 9));
    return { x, y };
  });
  const ref = python(
    `
import json, sys
from scipy.stats import spearmanr, rankdata
d = json.load(sys.stdin)
print(json.dumps([{"rho": float(spearmanr(c["x"], c["y"])[0]), "ranks": rankdata(c["x"]).tolist()} for c in d]))
`,
    cases,
  ) as { rho: number; ranks: number[] }[];
  cases.forEach(({ x, y }, k) => {
    t.ok(
      Math.abs((spearman(x, y) as number) - ref[k].rho) < 1e-12,
      `case ${k}: ρ = ${ref[k].rho.toFixed(4)}`,
    );
    t.same([...averageRanks(x)], ref[k].ranks, `case ${k}: average ranks`);
  });
  t.equal(spearman([1, 1, 1], [1, 2, 3]), null, 'a constant side has no ρ');
  t.equal(significantRho(2), null);
  t.ok(Math.abs((significantRho(101) as number) - 0.23263) < 1e-9, 'ρ threshold z/√(n − 1)');
});

t.test('the multimodality measure on hand-made sides', async (t) => {
  const concepts = ['red', 'blue', 'green', 'star', 'happy', 'sad'];
  const seeing = { names: concepts, scores: [0.9, 0.1, 0.2, 0.3, 0.05, 0.0] };
  const words = ['lemon', ...concepts, 'apple'];
  const reading = { names: words, scores: [0.5, 0.8, 0.0, 0.1, 0.3, -0.2, -0.1, 0.6] };
  const texts = [...words, 'a red circle'];
  const speaking = { names: texts, scores: [0.1, 0.7, 0.05, 0.2, 0.3, 0.0, -0.3, 0.2, 0.9] };
  const m = multimodality(seeing, reading, speaking);
  if (!m) throw new Error('no measure');
  t.equal(m.topCategory, 'red');
  t.equal(m.readingRank, 1, 'red is the top word');
  t.equal(m.speakingRank, 2, 'red is second to "a red circle" among the texts');
  t.equal(m.multimodal, true);
  t.equal(m.shared, 6);
  t.ok(
    Math.abs(
      (m.agreement.seeingReading.rho as number) -
        (spearman([0.9, 0.1, 0.2, 0.3, 0.05, 0], [0.8, 0, 0.1, 0.3, -0.2, -0.1]) as number),
    ) < 1e-12,
  );
  // Move red down the speaking side past the top 5: no longer multimodal.
  const quiet = { names: texts, scores: [0.9, 0.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2] };
  const q = multimodality(seeing, reading, quiet);
  t.equal(q?.speakingRank, 9);
  t.equal(q?.multimodal, false);
  // A top category that is not a word: no reading rank, not multimodal.
  const other = multimodality({ names: ['zebra', 'red'], scores: [2, 1] }, reading, speaking);
  t.equal(other?.readingRank, null);
  t.equal(other?.speakingRank, null);
  t.equal(other?.multimodal, false);
  t.equal(multimodality({ names: [], scores: [] }, reading, speaking), null);
});

t.test(
  'BlockDots and GroupMoments: column-major blocks and a row-major tail give CentredDots’s and ColumnMoments’s values',
  async (t) => {
    const next = random(19);
    const [N, C, B] = [43, 13, 8]; // 5 blocks of 8 rows and a tail of 3
    // Large offsets and zeros (dead neurons, zero target values) where cancellation would show.
    const rows = Float32Array.from({ length: N * C }, (_, i) =>
      i % C === 4 ? 0 : 1000 * ((i % C) % 3) + (next() < 0.2 ? 0 : next()),
    );
    const moments = new ColumnMoments(C);
    moments.addToMeans(rows, N);
    const means = moments.finishMeans();
    const neuron = 7;
    const target = Float64Array.from({ length: N }, (_, i) => rows[i * C + neuron] - means[neuron]);
    const reference = new CentredDots(means, target);
    reference.add(rows, 0, N);
    const blocked = new BlockDots(means, target);
    const bytes = new Uint8Array(rows.buffer);
    const blocks = Math.floor(N / B);
    for (let b = 0; b < blocks; b++) {
      const block = transpose(bytes.subarray(b * B * C * 4, (b + 1) * B * C * 4), B, C, 4);
      blocked.addBlock(new Float32Array(block.buffer), b * B, B);
    }
    blocked.addRows(rows.subarray(blocks * B * C), blocks * B, N - blocks * B);
    const got = blocked.dots;
    const grouped = new GroupMoments(C);
    for (let b = 0; b < blocks; b++) {
      const block = transpose(bytes.subarray(b * B * C * 4, (b + 1) * B * C * 4), B, C, 4);
      grouped.addBlock(new Float32Array(block.buffer), B);
    }
    grouped.addRows(rows.subarray(blocks * B * C), N - blocks * B);
    moments.addToSquares(rows, N);
    const exact = moments.result();
    const fromGroups = grouped.result();
    t.equal(fromGroups.images, N);
    t.ok(
      Array.from(
        fromGroups.means,
        (mean, c) => Math.abs(mean - exact.means[c]) <= 1e-12 * Math.max(1, Math.abs(exact.means[c])),
      ).every(Boolean),
      'GroupMoments: the two-pass means',
    );
    t.ok(
      Array.from(
        fromGroups.squares,
        (sq, c) => Math.abs(sq - exact.squares[c]) <= 1e-9 * Math.max(1, exact.squares[c]),
      ).every(Boolean),
      'GroupMoments: the two-pass centred sums of squares',
    );
    t.equal(fromGroups.squares[4], 0, 'a constant column has none');
    t.equal(got.length, C);
    t.equal(got[4], 0, 'a constant column has a zero numerator');
    const worst = Math.max(...Array.from(got, (dot, c) => Math.abs(dot - reference.dots[c])));
    const scale = Math.max(...Array.from(reference.dots, Math.abs));
    t.ok(worst <= 1e-9 * scale, `largest difference ${worst.toExponential(2)} of ${scale.toFixed(3)}`);
    t.ok(Math.abs(got[neuron] - reference.dots[neuron]) <= 1e-9 * scale, 'the neuron with itself');
  },
);
