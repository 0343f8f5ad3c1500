/**
 * `npm run lexical-overlap -- MODEL_DIR`: how the lexical neurons the word index's detector flags
 * (src/words/lexical.ts) compare with a reference set — by default the model catalogue's lexical
 * family, which for an RN50x4 export is the article's published ids (70 distinct; Goh et al. 2021,
 * CC BY 4.0) — at several thresholds: flagged, overlap, precision and recall against the reference,
 * Jaccard, the overlap chance would give, and the ROC AUC of the score. For users with the weights.
 *
 *   npm run lexical-overlap -- MODEL_DIR [--reference IDS.json] [--threshold T ...] [--build]
 *                              [--words FILE] [--size N] [--json]
 *
 * The word index is the one `npm run index-words` builds for MODEL_DIR (DATA_DIR, REDIS_URL, WORD_*
 * as for the server; --words/--size as for index-words); --build builds it when it is missing.
 * Exit codes: 0 done, 1 error, 2 no index (and no --build) or no reference set.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { catalogueLexical } from '../attribution/lexical-neurons.js';
import { NeuronCatalogue } from '../attribution/neuron-catalogue.js';
import { createCache } from '../cache/index.js';
import { ClipModel } from '../clip/clip-model.js';
import { MODEL_FILES } from '../clip/model-directory.js';
import { loadConfig } from '../config.js';
import { DEFAULT_LEXICAL_THRESHOLD, lexicalNeurons, lexicalScore } from '../words/lexical.js';
import { loadWordSettings } from '../words/settings.js';
import { createWordService } from '../words/setup.js';
import { existsSync } from 'node:fs';

export interface OverlapRow {
  threshold: number;
  flagged: number;
  overlap: number;
  precision: number | null;
  recall: number;
  jaccard: number;
  /** The overlap a random set of `flagged` neurons would have on average. */
  chance: number;
}

export interface OverlapReport {
  model: string;
  neurons: number;
  vocabulary: { size: number; source: string; regressionWords: number };
  method: string;
  reference: { source: string; ids: number[] };
  auc: number;
  rows: OverlapRow[];
  /** Reference ids the default threshold misses, with their scores (highest first). */
  missed: { neuron: number; score: number }[];
}

/** The overlap of the detector's flags with `reference` at each threshold. */
export function overlapReport(
  score: readonly number[],
  reference: readonly number[],
  thresholds: readonly number[],
): { auc: number; rows: OverlapRow[] } {
  const C = score.length;
  const ref = new Set(reference);
  const rows = thresholds.map((threshold) => {
    const flagged = score.flatMap((value, neuron) => (value >= threshold ? [neuron] : []));
    const overlap = flagged.filter((neuron) => ref.has(neuron)).length;
    return {
      threshold,
      flagged: flagged.length,
      overlap,
      precision: flagged.length ? overlap / flagged.length : null,
      recall: ref.size ? overlap / ref.size : 0,
      jaccard: overlap / (flagged.length + ref.size - overlap || 1),
      chance: (flagged.length * ref.size) / C,
    };
  });
  let pairs = 0;
  let wins = 0;
  for (const a of ref)
    for (let b = 0; b < C; b++) {
      if (ref.has(b)) continue;
      pairs++;
      wins += score[a] > score[b] ? 1 : score[a] === score[b] ? 0.5 : 0;
    }
  return { auc: pairs ? wins / pairs : NaN, rows };
}

function table(report: OverlapReport): string {
  const pct = (value: number | null) => (value === null ? '—' : `${(100 * value).toFixed(1)} %`);
  const lines = [
    `model ${report.model}: ${report.neurons} neurons; word index of ${report.vocabulary.size} words (${report.vocabulary.source}), ${report.vocabulary.regressionWords} in the regressions; score ${report.method}`,
    `reference: ${report.reference.ids.length} neurons (${report.reference.source})`,
    `ROC AUC of the score for the reference: ${report.auc.toFixed(3)}`,
    '',
    '| threshold | flagged | overlap | precision | recall | Jaccard | overlap by chance |',
    '|---|---|---|---|---|---|---|',
    ...report.rows.map(
      (r) =>
        `| ${r.threshold} | ${r.flagged} | ${r.overlap} | ${pct(r.precision)} | ${pct(r.recall)} | ${r.jaccard.toFixed(3)} | ${r.chance.toFixed(1)} |`,
    ),
    '',
    `missed at the default threshold ${DEFAULT_LEXICAL_THRESHOLD}: ${report.missed.length ? report.missed.map((m) => `${m.neuron} (${m.score.toFixed(3)})`).join(', ') : 'none'}`,
  ];
  return lines.join('\n');
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      reference: { type: 'string' },
      threshold: { type: 'string', multiple: true },
      build: { type: 'boolean', default: false },
      words: { type: 'string' },
      size: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const env = { ...process.env };
  if (positionals[0]) env.MODEL_DIR = positionals[0];
  if (values.words) env.WORD_VOCAB_FILE = values.words;
  if (values.size) env.WORD_VOCAB_SIZE = values.size;
  const config = loadConfig(env);
  const model = await ClipModel.load(config.modelDir, {
    ...config,
    warn: (m) => console.error('warning:', m),
  });
  const quiet = {
    info: () => undefined,
    warn: (obj: object | string, msg?: string) =>
      console.error('warning:', msg ?? obj, typeof obj === 'object' ? JSON.stringify(obj) : ''),
    error: (obj: object | string, msg?: string) => console.error('error:', msg ?? obj),
  };
  const cache = createCache({ redisUrl: config.redisUrl, ttlSeconds: config.cacheTtlSeconds, logger: quiet });
  const words = await createWordService({
    model,
    dataDir: config.dataDir,
    settings: loadWordSettings(env),
    cache,
    log: quiet,
  });
  try {
    let reference: { source: string; ids: number[] };
    if (values.reference) {
      const ids = JSON.parse(await readFile(values.reference, 'utf8')) as unknown;
      if (
        !Array.isArray(ids) ||
        !ids.every((id) => Number.isInteger(id) && id >= 0 && id < model.neuronCount)
      )
        throw new Error(
          `${values.reference}: expected a JSON array of neuron ids from 0 to ${model.neuronCount - 1}`,
        );
      reference = { source: values.reference, ids: [...new Set(ids as number[])].sort((a, b) => a - b) };
    } else {
      const file = model.directory.path(MODEL_FILES.neuronCatalogue);
      const catalogue = existsSync(file)
        ? await NeuronCatalogue.load(file, model.neuronCount)
        : NeuronCatalogue.empty(model.neuronCount);
      const entries = catalogueLexical(catalogue);
      const sources = [...new Set(entries.map((entry) => entry.source ?? 'no source'))];
      reference = {
        source: `the catalogue's lexical family: ${sources.join('; ') || 'none'}`,
        ids: entries.map((entry) => entry.id),
      };
    }
    if (reference.ids.length === 0) {
      console.error('no reference set: the catalogue has no lexical neurons; give --reference IDS.json');
      return 2;
    }
    if (!(await words.load())) {
      if (!values.build) {
        console.error(
          `no word index for ${config.modelDir} in ${config.dataDir}: build it with \`npm run index-words\` (same MODEL_DIR, DATA_DIR) or pass --build`,
        );
        return 2;
      }
      console.error(`building the word index of ${words.vocabulary.words.length} words…`);
      words.startBuild();
      await words.settled();
    }
    const { header } = await words.require();
    if (!header.lexical) {
      console.error('this word index has no lexical scores: rebuild it');
      return 2;
    }
    const score = lexicalScore(header.lexical);
    const thresholds = (values.threshold ?? ['0.25', '0.3', String(DEFAULT_LEXICAL_THRESHOLD), '0.4', '0.5'])
      .map(Number)
      .sort((a, b) => a - b);
    const flaggedAtDefault = new Set(lexicalNeurons(header.lexical));
    const report: OverlapReport = {
      model: model.name,
      neurons: model.neuronCount,
      vocabulary: {
        size: header.rows,
        source: words.vocabulary.source,
        regressionWords: header.lexical.words,
      },
      method: header.lexical.method,
      reference,
      ...overlapReport(score, reference.ids, thresholds),
      missed: reference.ids
        .filter((id) => !flaggedAtDefault.has(id))
        .map((neuron) => ({ neuron, score: score[neuron] }))
        .sort((a, b) => b.score - a.score),
    };
    console.log(values.json ? JSON.stringify(report) : table(report));
    return 0;
  } finally {
    await words.close();
    await cache.close();
    await model.release();
  }
}

if (process.argv[1]?.endsWith('lexical-overlap.ts') || process.argv[1]?.endsWith('lexical-overlap.js'))
  main().then(
    (code) => process.exit(code),
    (error: Error) => {
      console.error(error.message);
      process.exit(1);
    },
  );
