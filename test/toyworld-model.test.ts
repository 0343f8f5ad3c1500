/**
 * The committed default model (models/toyworld) on held-out renders of its world, through the
 * exported ONNX graphs and onnxruntime-node (what the service runs), not PyTorch.
 *
 * Two disjoint held-out seeds (test/helpers/toyworld.ts): the neuron scales and labels were
 * calibrated on CALIBRATION_SEED (checked first: recomputed from that seed's images through the
 * exported graphs, every labelled neuron answers its concept at 1 and every label is the
 * catalogue's); every figure is then measured on EVALUATION_SEED, whose images the calibration never
 * saw, and again on UNTOUCHED_SEED, which nothing else used (not even choosing a training lever).
 * `tools/toyworld/heldout.py` (PIL only) draws the images at model size and lists the zero-shot tasks;
 * prompts are tokenized with the service's tokenizer (and must match the ids of the project's Python
 * BPE encoder, which the model was trained with). Every vocabulary word is also drawn by the
 * service's own rasteriser (src/clip/raster.ts). Asserted: the directory validates, zero-shot
 * accuracy per family, multimodal directions x·(W·t_c) (and the stricter variant), the single top
 * neuron of W·t_c, the typographic attack rate, the labels' and scales' agreement on the evaluation
 * seed, that the bilinear estimate tracks the exact logit, and that words drawn in the service
 * rasteriser's layout read as well as training-style renders. Every threshold is a measured figure
 * (models/toyworld/README.md) minus a margin, or the figure itself where it is a count that cannot be
 * lowered without the assertion becoming empty.
 */
import t, { type Test } from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { rasterizeText } from '../src/clip/raster.js';
import {
  CALIBRATION_SEED,
  EVALUATION_SEED,
  UNTOUCHED_SEED,
  TOYWORLD_DIR,
  calibrate,
  dot,
  embedTexts,
  encodeImages,
  generateHeldout,
  heldoutRgb,
  l2normalize,
  openToyworld,
  pearson,
  type HeldoutItem,
} from './helpers/toyworld.js';

/** Zero-shot accuracy floors. Measured on seeds 8 and 9: 100 % on each of these four. */
const MIN_ZERO_SHOT: Record<string, number> = {
  colours: 0.95,
  shapes: 0.95,
  expressions: 0.95,
  reading: 0.95,
  /** The 170-word reading task (two training-style renders per word). Measured: 92.1 % (313/340), seed 9 89.7 % (305/340). */
  reading_all_training_fonts: 0.88,
};
/** Directions W·t_c whose pictures and words both reach z ≥ 2. Measured: 8 / 5 on both seeds. */
const MIN_DIRECTION_PASS = { colour: 7, expression: 4 };
/** The stricter variant (pictures and words of the other concepts together). Measured: 8 / 2 on both seeds. */
const MIN_DIRECTION_MIXED_PASS = { colour: 7, expression: 2 };
/** The same test with the spatial mean x scaled to unit length. Measured: 8 / 5 on both seeds. */
const MIN_DIRECTION_NORMED_PASS = { colour: 7, expression: 4 };
/**
 * The single top neuron of W·t_c as the direction (pictures and words both z ≥ 2). Measured: 2
 * colours, 0 expressions on seed 8; 1 and 0 on seed 9. A floor of 0 could never fail, so the
 * expression count is asserted exactly (a change either way is a change of the model, to be
 * measured and written down).
 */
const TOP_NEURON_PASS = { colour: { min: 1 }, expression: { exactly: 0 } };
/** Typographic attack: share of colour-A shapes labelled with colour word B read as B. Measured: 17.0% (19/112), seed 9 17.9% (20/112). */
const MIN_ATTACK_RATE = 0.1;
/** Service-rasteriser words may read at most this much worse than training-style renders. */
const RASTER_MARGIN = 0.03;
/**
 * The catalogue's labels (calibration seed) recomputed on the evaluation seed: per family, the share
 * of its neurons that keep their label. Measured: colour 91/108, expression 94/96, shape 60/68, word
 * 60/240 (a word has 2-3 renders per seed among 170 words: word labels are mostly unstable); seed 9:
 * 92/108, 91/96, 60/68, 67/240.
 */
const MIN_LABEL_AGREEMENT: Record<string, number> = {
  colour: 0.75,
  expression: 0.9,
  shape: 0.75,
  word: 0.15,
};
/**
 * Concept words with a neuron labelled with them (labels recomputed on the evaluation seed, not the
 * catalogue's) among the top 5 of W·t/|t|. Measured: 8/8 colours, 5/5 expressions, on both seeds.
 */
const MIN_OWN_NEURON_TOP5 = { colour: 7, expression: 5 };
/**
 * The same for the model as trained, before the scales (row c of W divided by s_c again), with the
 * same labels of the seed measured. Measured, and asserted exactly: 4/8 colours (red, orange, green, blue;
 * on seed 9 red, orange, blue, pink), 5/5 expressions (the model card gave 3/8 colours with the
 * catalogue's seed-7 labels).
 */
const OWN_NEURON_TOP5_UNSCALED = { colour: 4, expression: 5 };
/**
 * The bilinear estimate vs the exact zero-shot logit, over every evaluation image × every held-out
 * prompt (1,378 × 382 pairs, Pearson). Measured: Σ x_i·a_i 0.971; logit_scale·Σ x_i·a_i/|image
 * embedding| 0.996, the same on seed 9 (the rest is the head's bias and positional terms, largest gap
 * 3.4 logits; 2.6 on seed 9).
 */
const MIN_BILINEAR_CORRELATION = { sum: 0.95, bilinearLogit: 0.99 };

function meanStd(values: number[]): { mean: number; std: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) + 1e-9 };
}

const model = await openToyworld();
t.teardown(() => model.release());
const { manifest } = model.directory;
const C = manifest.neuron_count;
const D = manifest.embed_dim;
const W = model.directory.bilinear; // [C, D] row-major
const catalogue = JSON.parse(await readFile(path.join(TOYWORLD_DIR, 'neurons.json'), 'utf8')) as Record<
  string,
  { label: string; family: string; score: number; source: string }
>;

t.test(`the scales and labels were calibrated on held-out seed ${CALIBRATION_SEED}`, async (t) => {
  const { heldout, cleanup } = await generateHeldout(CALIBRATION_SEED);
  t.teardown(cleanup);
  const { means } = await encodeImages(model, heldout.items, (item) => heldoutRgb(heldout, item));
  const { labels, preferred } = calibrate(heldout.items, means);
  const labelled = labels.flatMap((label, c) => (label ? [c] : []));
  const worst = Math.max(...labelled.map((c) => Math.abs(preferred[c] - 1)));
  t.comment(
    `seed ${CALIBRATION_SEED}: ${labelled.length} labelled neurons, |preferred mean − 1| ≤ ${worst.toExponential(1)}`,
  );
  t.ok(worst < 1e-3, 'every labelled neuron answers its preferred concept at 1 (the scales are this seed’s)');
  const differ = labelled.filter((c) => catalogue[c]?.label !== labels[c]!.label);
  t.same(differ, [], 'every label of neurons.json is this seed’s');
});

for (const seed of [EVALUATION_SEED, UNTOUCHED_SEED])
  t.test(`models/toyworld on held-out seed ${seed}`, (t) => measureOn(t, seed));

async function measureOn(t: Test, seed: number): Promise<void> {
  t.ok(manifest.vocab_size < 49408, 'own, small vocabulary');
  const { heldout, cleanup } = await generateHeldout(seed);
  t.teardown(cleanup);

  // Prompts: the service's tokenizer must give the ids the model was trained with.
  const promptTexts = Object.keys(heldout.prompts).sort();
  const mismatches = promptTexts.filter(
    (text) => JSON.stringify(model.tokenizer.encode(text).ids) !== JSON.stringify(heldout.prompts[text]),
  );
  t.same(mismatches, [], 'TypeScript tokenizer ids equal the Python BPE encoder ids for every prompt');
  const textOf = await embedTexts(model, promptTexts);

  // Images: the held-out PNGs, plus every vocabulary word drawn by the service's own rasteriser
  // (src/clip/raster.ts, what /v1/raster returns).
  const serviceTask = heldout.tasks.reading_all_service_raster;
  heldout.tasks.reading_all_service_ts = { ...serviceTask, sets: ['service_word_ts'] };
  const items: HeldoutItem[] = [
    ...heldout.items,
    ...serviceTask.classes.map((word) => ({ file: '', set: 'service_word_ts', label: word })),
  ];
  const encoded = await encodeImages(model, items, async (item) =>
    item.set === 'service_word_ts'
      ? rasterizeText(item.label, manifest.image_size).data
      : heldoutRgb(heldout, item),
  );
  const embeds = encoded.embeds.map(l2normalize);
  const { means } = encoded;
  const bySet = new Map<string, number[]>();
  items.forEach((item, i) => bySet.set(item.set, [...(bySet.get(item.set) ?? []), i]));

  // Zero-shot: prompt ensemble per class, argmax cosine.
  const accuracy: Record<string, number> = {};
  const counts: Record<string, string> = {};
  let attackWritten = 0;
  let attackTrue = 0;
  let attackTotal = 0;
  for (const [name, task] of Object.entries(heldout.tasks)) {
    const classEmb = task.classes.map((c) => {
      const sum = new Float32Array(D);
      for (const tmpl of task.templates) {
        const e = l2normalize(textOf.get(tmpl.replace('{}', c))!);
        for (let d = 0; d < D; d++) sum[d] += e[d] / task.templates.length;
      }
      return l2normalize(sum);
    });
    const idx = task.sets.flatMap((s) => bySet.get(s) ?? []);
    let correct = 0;
    for (const i of idx) {
      let best = 0;
      for (let k = 1; k < classEmb.length; k++) {
        if (dot(embeds[i], classEmb[k]) > dot(embeds[i], classEmb[best])) best = k;
      }
      const predicted = task.classes[best];
      if (name === 'attack') {
        if (predicted === items[i].word) attackWritten++;
        if (predicted === items[i].label) attackTrue++;
        attackTotal++;
      } else if (predicted === items[i].label) correct++;
    }
    if (name !== 'attack') {
      accuracy[name] = correct / idx.length;
      counts[name] = `${correct}/${idx.length}`;
    }
  }
  t.comment(`zero-shot ${JSON.stringify(counts)}`);
  for (const [family, min] of Object.entries(MIN_ZERO_SHOT)) {
    t.ok(accuracy[family] >= min, `zero-shot ${family}: ${accuracy[family].toFixed(3)} >= ${min}`);
  }
  const training = accuracy.reading_all_training_fonts;
  for (const task of ['reading_all_service_raster', 'reading_all_service_ts']) {
    const service = accuracy[task];
    t.ok(
      service >= training - RASTER_MARGIN,
      `${task}: words in the service's layout read as well as training renders (${service.toFixed(3)} vs ${training.toFixed(3)})`,
    );
  }
  const attackRate = attackWritten / attackTotal;
  t.comment(
    `attack: ${attackWritten}/${attackTotal} read as the written colour, ${attackTrue}/${attackTotal} as the true one`,
  );
  t.ok(
    attackRate >= MIN_ATTACK_RATE,
    `typographic attack rate ${attackRate.toFixed(3)} >= ${MIN_ATTACK_RATE}`,
  );

  // Multimodal directions: x·(W·t_c) and the single top neuron of W·t_c.
  const unitMeans = means.map(l2normalize);
  const words = bySet.get('word') ?? [];
  const attributionOf = (tc: Float32Array) => {
    const v = new Float32Array(C);
    for (let c = 0; c < C; c++) v[c] = dot(W.subarray(c * D, (c + 1) * D), tc);
    return v;
  };
  for (const [family, spec] of Object.entries(heldout.directions)) {
    const pictures = bySet.get(spec.picture_set) ?? [];
    const familyWords = words.filter((i) => spec.classes.includes(items[i].label));
    const pass = { direction: 0, mixed: 0, top: 0, normed: 0 };
    const details: string[] = [];
    for (const concept of spec.classes) {
      const v = attributionOf(textOf.get(concept)!);
      let top = 0;
      for (let c = 1; c < C; c++) if (v[c] > v[top]) top = c;
      /** z of the concept's own images in `own` against the other concepts' images in `reference`. */
      const z = (score: (i: number) => number, own: number[], reference: number[]) => {
        const neg = meanStd(reference.filter((i) => items[i].label !== concept).map(score));
        const mine = own.filter((i) => items[i].label === concept).map(score);
        return (mine.reduce((a, b) => a + b, 0) / mine.length - neg.mean) / neg.std;
      };
      const both = [...pictures, ...familyWords];
      const pair = (score: (i: number) => number) => [
        z(score, pictures, pictures),
        z(score, familyWords, familyWords),
      ];
      const direction = (i: number) => dot(means[i], v);
      const [dp, dw] = pair(direction);
      const [mp, mw] = [z(direction, pictures, both), z(direction, familyWords, both)];
      const [tp, tw] = pair((i) => means[i][top]);
      const [np, nw] = pair((i) => dot(unitMeans[i], v));
      const [tnp, tnw] = pair((i) => unitMeans[i][top]);
      if (dp >= 2 && dw >= 2) pass.direction++;
      if (mp >= 2 && mw >= 2) pass.mixed++;
      if (tp >= 2 && tw >= 2) pass.top++;
      if (np >= 2 && nw >= 2) pass.normed++;
      const f = (...xs: number[]) => xs.map((x) => x.toFixed(1)).join(' / ');
      details.push(
        `${concept}: z ${f(dp, dw)} (mixed ${f(mp, mw)}; x/|x| ${f(np, nw)}), neuron ${top} ${f(tp, tw)} (x/|x| ${f(tnp, tnw)})`,
      );
    }
    t.comment(`${family}: ${JSON.stringify(pass)}\n# ${details.join('\n# ')}`);
    const key = family as keyof typeof MIN_DIRECTION_PASS;
    const n = spec.classes.length;
    t.ok(
      pass.direction >= MIN_DIRECTION_PASS[key],
      `${family}: ${pass.direction}/${n} concepts' W·t_c directions pass (>= ${MIN_DIRECTION_PASS[key]})`,
    );
    t.ok(
      pass.mixed >= MIN_DIRECTION_MIXED_PASS[key],
      `${family}: ${pass.mixed}/${n} pass the stricter variant (>= ${MIN_DIRECTION_MIXED_PASS[key]})`,
    );
    t.ok(
      pass.normed >= MIN_DIRECTION_NORMED_PASS[key],
      `${family}: ${pass.normed}/${n} directions pass with x at unit length (>= ${MIN_DIRECTION_NORMED_PASS[key]})`,
    );
    const topRule = TOP_NEURON_PASS[key];
    if ('exactly' in topRule) {
      t.equal(
        pass.top,
        topRule.exactly,
        `${family}: ${pass.top}/${n} single top neurons pass (exactly ${topRule.exactly})`,
      );
    } else {
      t.ok(
        pass.top >= topRule.min,
        `${family}: ${pass.top}/${n} single top neurons pass (>= ${topRule.min})`,
      );
    }
  }

  // The calibration on a disjoint seed: labels recomputed from this seed's images, and how far each
  // labelled neuron's mean activation on its catalogue concept is from the 1 its scale gave it.
  const heldoutMeans = means.slice(0, heldout.items.length);
  const { labels } = calibrate(heldout.items, heldoutMeans);
  const labelled = Object.keys(catalogue).map(Number);
  const agree = labelled.filter((c) => labels[c]?.label === catalogue[c].label).length;
  const byFamily = new Map<string, [number, number]>();
  for (const c of labelled) {
    const [same, all] = byFamily.get(catalogue[c].family) ?? [0, 0];
    byFamily.set(catalogue[c].family, [same + (labels[c]?.label === catalogue[c].label ? 1 : 0), all + 1]);
  }
  t.comment(
    `labels on seed ${seed}: ${agree}/${labelled.length} neurons keep the catalogue's label (` +
      [...byFamily].map(([family, [same, all]]) => `${family} ${same}/${all}`).join(', ') +
      ')',
  );
  for (const [family, [same, all]] of byFamily) {
    t.ok(
      same / all >= MIN_LABEL_AGREEMENT[family],
      `${family}: ${same}/${all} neurons keep their label on seed ${seed} (>= ${MIN_LABEL_AGREEMENT[family]})`,
    );
  }
  const conceptMean = (c: number) => {
    const { label, family } = catalogue[c];
    const own = heldout.items.flatMap((item, i) =>
      item.label === label &&
      (
        { colour: ['colour_patch'], shape: ['shape'], expression: ['face'], word: ['word', 'word_all'] }[
          family
        ] ?? []
      ).includes(item.set)
        ? [heldoutMeans[i][c]]
        : [],
    );
    return own.reduce((a, b) => a + b, 0) / own.length;
  };
  const ratios = labelled.map(conceptMean).sort((a, b) => a - b);
  const q = (p: number) => ratios[Math.floor(p * (ratios.length - 1))];
  t.comment(
    `scales on seed ${seed}: a labelled neuron's mean on its concept, quartiles ${[0, 0.25, 0.5, 0.75, 1].map((p) => q(p).toFixed(3)).join(' / ')}`,
  );
  // Own neuron in the top 5 of W·t/|t|, with the labels of this seed rather than the catalogue's;
  // and the same for the model as trained, before the scales (row c of W divided by s_c again).
  const scales = JSON.parse(
    await readFile(path.join(TOYWORLD_DIR, 'neuron_scales.json'), 'utf8'),
  ) as number[];
  for (const [family, spec] of Object.entries(heldout.directions)) {
    const ownInTop5 = (unscaled: boolean) =>
      spec.classes.filter((concept) => {
        const v = attributionOf(textOf.get(concept)!);
        if (unscaled) for (let c = 0; c < C; c++) v[c] /= scales[c];
        const order = [...v.keys()].sort((a, b) => v[b] - v[a] || a - b).slice(0, 5);
        return order.some((c) => labels[c]?.label === concept);
      });
    const found = ownInTop5(false);
    const before = ownInTop5(true);
    const key = family as keyof typeof MIN_OWN_NEURON_TOP5;
    t.ok(
      found.length >= MIN_OWN_NEURON_TOP5[key],
      `${family}: ${found.length}/${spec.classes.length} words find a neuron labelled with them on seed ${seed} in their top 5 (>= ${MIN_OWN_NEURON_TOP5[key]}: ${found.join(', ')})`,
    );
    t.equal(
      before.length,
      OWN_NEURON_TOP5_UNSCALED[key],
      `${family}: without the scales, ${before.length}/${spec.classes.length} (${before.join(', ')})`,
    );
  }

  // The bilinear estimate against the exact logit, every image × every prompt: with the head's
  // attention uniform, logit = logit_scale·(Σ x_i·a_i + (bias and positional terms)·t̂)/|e|.
  const scale = manifest.logit_scale;
  const sums: number[] = [];
  const bilinear: number[] = [];
  const exact: number[] = [];
  const attributions = promptTexts.map((text) => attributionOf(l2normalize(textOf.get(text)!))); // W·t/|t|
  const unitTexts = promptTexts.map((text) => l2normalize(textOf.get(text)!));
  for (let i = 0; i < heldout.items.length; i++) {
    const e = encoded.embeds[i];
    let norm = 0;
    for (const x of e) norm += x * x;
    norm = Math.sqrt(norm);
    for (let p = 0; p < promptTexts.length; p++) {
      const s = dot(means[i], attributions[p]);
      sums.push(s);
      bilinear.push((scale * s) / norm);
      exact.push(scale * dot(embeds[i], unitTexts[p]));
    }
  }
  const r = { sum: pearson(sums, exact), bilinearLogit: pearson(bilinear, exact) };
  let maxGap = 0;
  for (let k = 0; k < exact.length; k++) maxGap = Math.max(maxGap, Math.abs(exact[k] - bilinear[k]));
  t.comment(
    `bilinear vs exact logit over ${heldout.items.length} images × ${promptTexts.length} prompts: r(Σ x·a) ${r.sum.toFixed(4)}, r(bilinear logit) ${r.bilinearLogit.toFixed(4)}, largest |logit − bilinear logit| ${maxGap.toFixed(2)}`,
  );
  t.ok(
    r.sum >= MIN_BILINEAR_CORRELATION.sum,
    `r(Σ x_i·a_i, logit) ${r.sum.toFixed(4)} >= ${MIN_BILINEAR_CORRELATION.sum}`,
  );
  t.ok(
    r.bilinearLogit >= MIN_BILINEAR_CORRELATION.bilinearLogit,
    `r(bilinear logit, logit) ${r.bilinearLogit.toFixed(4)} >= ${MIN_BILINEAR_CORRELATION.bilinearLogit}`,
  );

  // The catalogue labels every neuron.
  t.equal(Object.keys(catalogue).length, C, 'neurons.json labels every neuron');
  const vocabulary = (await readFile(path.join(TOYWORLD_DIR, 'words.txt'), 'utf8')).trim().split('\n');
  for (const phrase of ['red', 'yellow', 'happy', 'star', 'lemon', 'red circle', 'happy face']) {
    t.ok(vocabulary.includes(phrase), `words.txt holds "${phrase}"`);
  }
}
