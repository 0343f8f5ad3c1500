/**
 * Where the truth about lexical neurons is known: the embedded model (models/toyworld), whose world
 * (tools/toyworld/world.py) draws the concepts of three families as pictures (colour patches, shapes,
 * faces) and every word of its vocabulary as rendered text. A neuron is **lexical by construction**
 * when it fires for rendered words but not for the pictures of the words' concept:
 *
 *   a_W(w) = mean spatial-mean activation over held-out renders of word w (heldout.py, set word_all,
 *            training-style fonts, never the service's rasteriser that the detector reads);
 *   a_P(k) = the same over held-out pictures of concept k (colour_patch, shape, face);
 *   w*     = argmax_w a_W(w), its concept k* = world.WORD_CONCEPT[w*] (a synonym's or a feelings-wheel
 *            word's concept is the drawn one; extra nouns and digits have no pictures: a_P = 0);
 *   lexical ⇔ a_W(w*) ≥ max_k a_P(k)  (rendered words are its strongest stimulus)
 *             and a_P(k*) < RATIO · a_W(w*)  (the pictures of that word's concept leave it quiet).
 *
 * Activations are post-ReLU (≥ 0), so the ratio reads the same for every neuron. Dead neurons (no
 * held-out image activates them) are not lexical. `npx tsx scripts/toyworld-lexical-truth.ts`
 * prints the truth and the detector's precision and recall on the model's own vocabulary and on the
 * default English one (docs/lexical-neurons.md); test/lexical-detector.test.ts asserts them.
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { loadModelDirectory } from '../src/clip/model-directory.js';

export const REPO = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
export const TOYWORLD = path.join(REPO, 'models/toyworld');
const PYTHON = process.env.EXPORT_PYTHON ?? '/usr/bin/python3';
/** a_P(k*) below this share of a_W(w*): the concept's pictures leave the neuron quiet. */
export const DEFAULT_RATIO = 0.5;
const PICTURE_SETS = ['colour_patch', 'shape', 'face'];
const WORD_SET = 'word_all';

interface HeldoutItem {
  file: string;
  set: string;
  label: string;
}

export interface NeuronTruth {
  neuron: number;
  lexical: boolean;
  topWord: string;
  concept: string;
  wordActivation: number;
  /** a_P(k*): the word's concept's pictures (0 when the concept has none). */
  conceptPictures: number;
  /** max_k a_P(k). */
  bestPicture: number;
  bestPictureConcept: string;
}

export interface Truth {
  neurons: NeuronTruth[];
  lexical: number[];
  dead: number;
  ratio: number;
  pictures: number;
  wordRenders: number;
}

/** Mean activation of every neuron per group of images, from held-out renders (seed `seed`). */
export async function heldoutGroupMeans(
  modelDir: string,
  seed: number,
): Promise<{ groups: Map<string, Float64Array>; wordConcept: Record<string, string>; counts: number[] }> {
  const directory = await loadModelDirectory(modelDir);
  const { image_size: S, neuron_count: C, mean, std } = directory.manifest;
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'toyworld-lexical-'));
  try {
    const gen = spawnSync(
      PYTHON,
      ['-m', 'tools.toyworld.heldout', '--seed', String(seed), '--out', tmp, '--per', '12'],
      { encoding: 'utf8', cwd: REPO },
    );
    if (gen.status !== 0) throw new Error(`heldout.py failed: ${gen.stderr.trim().split('\n').pop()}`);
    const concept = spawnSync(
      PYTHON,
      ['-c', 'import json\nfrom tools.toyworld import world\nprint(json.dumps(world.WORD_CONCEPT))'],
      { encoding: 'utf8', cwd: REPO },
    );
    if (concept.status !== 0) throw new Error(`world.py failed: ${concept.stderr.trim().split('\n').pop()}`);
    const wordConcept = JSON.parse(concept.stdout) as Record<string, string>;
    const heldout = JSON.parse(await readFile(path.join(tmp, 'heldout.json'), 'utf8')) as {
      items: HeldoutItem[];
    };
    const items = heldout.items.filter((item) => PICTURE_SETS.includes(item.set) || item.set === WORD_SET);
    const session = await ort.InferenceSession.create(path.join(modelDir, 'visual_trunk.onnx'), {
      intraOpNumThreads: 2,
    });
    const sums = new Map<string, Float64Array>();
    const n = new Map<string, number>();
    const plane = S * S;
    const counts = [0, 0];
    for (let start = 0; start < items.length; start += 128) {
      const batch = items.slice(start, start + 128);
      const pixels = new Float32Array(batch.length * 3 * plane);
      await Promise.all(
        batch.map(async (item, b) => {
          const raw = await sharp(await readFile(path.join(tmp, item.file)))
            .removeAlpha()
            .raw()
            .toBuffer();
          for (let p = 0; p < plane; p++)
            for (let c = 0; c < 3; c++)
              pixels[b * 3 * plane + c * plane + p] = (raw[p * 3 + c] / 255 - mean[c]) / std[c];
        }),
      );
      const out = await session.run({
        pixel_values: new ort.Tensor('float32', pixels, [batch.length, 3, S, S]),
      });
      const maps = out.neurons.data as Float32Array;
      const cells = maps.length / (batch.length * C);
      batch.forEach((item, b) => {
        const key = `${item.set === WORD_SET ? 'word' : 'picture'}:${item.label}`;
        counts[item.set === WORD_SET ? 1 : 0]++;
        let sum = sums.get(key);
        if (!sum) sums.set(key, (sum = new Float64Array(C)));
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let k = 0; k < cells; k++) s += maps[(b * C + c) * cells + k];
          sum[c] += s / cells;
        }
        n.set(key, (n.get(key) ?? 0) + 1);
      });
    }
    await session.release();
    for (const [key, sum] of sums) for (let c = 0; c < C; c++) sum[c] /= n.get(key) as number;
    return { groups: sums, wordConcept, counts };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The lexical neurons of the toy world (see the module comment). */
export async function toyLexicalTruth(
  modelDir = TOYWORLD,
  { seed = 11, ratio = DEFAULT_RATIO } = {},
): Promise<Truth> {
  const { groups, wordConcept, counts } = await heldoutGroupMeans(modelDir, seed);
  return truthFromGroups(groups, wordConcept, ratio, counts);
}

export function truthFromGroups(
  groups: Map<string, Float64Array>,
  wordConcept: Record<string, string>,
  ratio: number,
  counts = [0, 0],
): Truth {
  const words = [...groups.keys()].filter((key) => key.startsWith('word:'));
  const pictures = [...groups.keys()].filter((key) => key.startsWith('picture:'));
  const C = groups.get(words[0])!.length;
  const neurons: NeuronTruth[] = [];
  let dead = 0;
  for (let c = 0; c < C; c++) {
    let topWord = words[0];
    for (const key of words) if (groups.get(key)![c] > groups.get(topWord)![c]) topWord = key;
    let bestPicture = pictures[0];
    for (const key of pictures) if (groups.get(key)![c] > groups.get(bestPicture)![c]) bestPicture = key;
    const word = topWord.slice('word:'.length);
    const concept = wordConcept[word] ?? word;
    const wordActivation = groups.get(topWord)![c];
    const conceptPictures = groups.get(`picture:${concept}`)?.[c] ?? 0;
    const best = groups.get(bestPicture)![c];
    const alive = Math.max(wordActivation, best) > 1e-6;
    if (!alive) dead++;
    neurons.push({
      neuron: c,
      lexical: alive && wordActivation >= best && conceptPictures < ratio * wordActivation,
      topWord: word,
      concept,
      wordActivation,
      conceptPictures,
      bestPicture: best,
      bestPictureConcept: bestPicture.slice('picture:'.length),
    });
  }
  return {
    neurons,
    lexical: neurons.filter((n) => n.lexical).map((n) => n.neuron),
    dead,
    ratio,
    pictures: counts[0],
    wordRenders: counts[1],
  };
}

/** Precision and recall of a flagged set against the truth. */
export function precisionRecall(flagged: readonly number[], truth: readonly number[]) {
  const truthSet = new Set(truth);
  const hits = flagged.filter((n) => truthSet.has(n)).length;
  return {
    flagged: flagged.length,
    truth: truth.length,
    hits,
    precision: flagged.length ? hits / flagged.length : NaN,
    recall: truth.length ? hits / truth.length : NaN,
  };
}

/** ROC AUC of scores for the truth (ties count half). */
export function rocAuc(scores: readonly number[], truth: readonly number[]): number {
  const positive = new Set(truth);
  let pairs = 0;
  let wins = 0;
  scores.forEach((a, i) => {
    if (!positive.has(i)) return;
    scores.forEach((b, j) => {
      if (positive.has(j)) return;
      pairs++;
      wins += a > b ? 1 : a === b ? 0.5 : 0;
    });
  });
  return wins / pairs;
}

/** The detector's scores on the toy model for a vocabulary: its own words.txt, or N English words. */
export async function detectorScores(vocabulary: 'own' | number, dataDir: string) {
  const { ClipModel } = await import('../src/clip/clip-model.js');
  const { loadConfig } = await import('../src/config.js');
  const { loadWordSettings } = await import('../src/words/settings.js');
  const { createWordService } = await import('../src/words/setup.js');
  const { defaultWords } = await import('../src/words/vocabulary.js');
  const config = loadConfig({
    ...process.env,
    MODEL_DIR: TOYWORLD,
    ORT_PROVIDERS: process.env.ORT_PROVIDERS ?? 'cpu',
  });
  const model = await ClipModel.load(TOYWORLD, { ...config, warn: () => undefined });
  const env: Record<string, string> = { WORD_RENDER_THREADS: '1' };
  if (vocabulary !== 'own') {
    const file = path.join(dataDir, `english-${vocabulary}.txt`);
    await writeFile(file, (await defaultWords(vocabulary)).join('\n'));
    env.WORD_VOCAB_FILE = file;
  }
  const words = await createWordService({ model, dataDir, settings: loadWordSettings(env) });
  try {
    if (!(await words.load())) {
      words.startBuild();
      await words.settled();
    }
    const { header } = await words.require();
    if (!header.lexical) throw new Error('the index has no lexical scores');
    return { scores: header.lexical, words: header.rows };
  } finally {
    await words.close();
    await model.release();
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string', default: '12' },
      english: { type: 'string', default: '20000' },
      'data-dir': { type: 'string' },
    },
  });
  const { DEFAULT_LEXICAL_THRESHOLD, lexicalNeurons, lexicalScore } = await import('../src/words/lexical.js');
  const truth = await toyLexicalTruth(TOYWORLD, { seed: Number(values.seed) });
  console.log(
    `truth (held-out seed ${values.seed}: ${truth.pictures} pictures, ${truth.wordRenders} word renders): ` +
      `${truth.lexical.length} of ${truth.neurons.length} neurons lexical (ratio ${truth.ratio}), ${truth.dead} dead`,
  );
  const dataDir = values['data-dir'] ?? (await mkdtemp(path.join(os.tmpdir(), 'toyworld-lexical-index-')));
  const vocabularies: ('own' | number)[] = ['own'];
  if (Number(values.english) > 0) vocabularies.push(Number(values.english));
  for (const vocabulary of vocabularies) {
    const { scores, words } = await detectorScores(vocabulary, dataDir);
    const score = lexicalScore(scores);
    const name = vocabulary === 'own' ? 'own words.txt' : `${vocabulary} English words`;
    console.log(
      `${name} (${words} words, ${scores.words} in the regressions): ROC AUC spelling R² ${rocAuc(score, truth.lexical).toFixed(3)}, ` +
        `R²(spelling) − R²(meaning) ${rocAuc(
          scores.spelling.map((v, c) => v - scores.meaning[c]),
          truth.lexical,
        ).toFixed(3)}`,
    );
    for (const threshold of [0.25, 0.3, DEFAULT_LEXICAL_THRESHOLD, 0.4, 0.5]) {
      const pr = precisionRecall(lexicalNeurons(scores, threshold), truth.lexical);
      console.log(
        `  threshold ${threshold}: ${pr.flagged} flagged, ${pr.hits} lexical by construction: precision ${pr.precision.toFixed(3)}, recall ${pr.recall.toFixed(3)}`,
      );
    }
  }
  if (!values['data-dir']) await rm(dataDir, { recursive: true, force: true });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await main();
