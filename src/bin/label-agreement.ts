/**
 * `npm run label-agreement -- MODEL_DIR`: how the automatic neuron labels (the whole-model labelling
 * job's catalogue, src/evidence/label-job.ts) agree with the model directory's hand labels — for an
 * RN50-x4 export, the article's ~190 hand labels the exporter carries in neurons.json (`handLabel`,
 * or `label` where its source is neuron-hand-labels.json; Goh et al. 2021, CC BY 4.0); for a
 * directory without hand labels (the embedded toy model), its published labels play their role.
 *
 * Per family of the reference (and all): neurons, exact agreement (the automatic top label, or one
 * of the top 3, is the hand label, case-insensitive), word agreement (it shares a content word with
 * the hand label: "sleepy" agrees with "Sleepy", "court" with "Court judge"), and the word agreement
 * of the top label expected by chance (the automatic top labels shuffled among the reference neurons).
 *
 *   npm run label-agreement -- MODEL_DIR [--collection probe] [--build] [--json]
 *
 * The catalogue is DATA_DIR's (as for the server); --build labels every neuron here first (the
 * model loaded in process, the collection under DATA_DIR: the probe is installed when the model
 * directory ships one). Exit codes: 0 done, 1 error, 2 no automatic catalogue (and no --build) or
 * no reference labels.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { NeuronEntry } from '../attribution/neuron-catalogue.js';
import { AUTOMATIC_FORMAT, type AutomaticCatalogue } from '../evidence/catalogue.js';
import { PROBE_COLLECTION } from '../evidence/service.js';

export interface AgreementRow {
  family: string;
  neurons: number;
  exactTop1: number;
  exactTop3: number;
  wordTop1: number;
  wordTop3: number;
  /** Expected word agreement of the top label with the top labels shuffled among the neurons. */
  chanceTop1: number;
}

export interface AgreementReport {
  model: string;
  neurons: number;
  reference: { source: string; labels: number };
  automatic: {
    collection: string;
    images: number;
    jobId: string;
    finishedAt: string;
    /** Share of neurons the multimodality measure calls multimodal (the job's). */
    multimodalShare: number | null;
  };
  rows: AgreementRow[];
  /** Reference neurons whose top label shares no word with the hand label (the first 20). */
  disagreements: { neuron: number; hand: string; automatic: string[] }[];
}

/** Exit code 2: what is missing, and how to make it. */
export class AgreementUnavailable extends Error {}

const STOP_WORDS = new Set(['the', 'and', 'for', 'with', 'photo', 'of', 'a', 'an', 'in', 'on']);

/** The content words of a label: lower case, letters and digits, 3+ characters, a plural 's' dropped. */
export function contentWords(label: string): Set<string> {
  return new Set(
    label
      .toLowerCase()
      .split(/[^\p{L}\p{N}]+/u)
      .filter((word) => word.length >= 3 && !STOP_WORDS.has(word))
      .map((word) =>
        word.length > 3 && word.endsWith('s') && !word.endsWith('ss') ? word.slice(0, -1) : word,
      ),
  );
}

function sharesWord(a: string, b: string): boolean {
  const words = contentWords(a);
  for (const word of contentWords(b)) if (words.has(word)) return true;
  return false;
}

/** The reference labels of a catalogue: hand labels where it has them, else its published labels. */
export function referenceLabels(catalogue: Record<string, Omit<NeuronEntry, 'id'> | string>): {
  source: string;
  labels: Map<number, { label: string; family: string }>;
} {
  const hand = new Map<number, { label: string; family: string }>();
  const published = new Map<number, { label: string; family: string }>();
  for (const [key, raw] of Object.entries(catalogue)) {
    const entry = typeof raw === 'string' ? { label: raw } : raw;
    const family = entry.family ?? 'none';
    const fromHandFile = entry.source?.includes('neuron-hand-labels') === true;
    const handLabel = entry.handLabel ?? (fromHandFile ? entry.label : undefined);
    if (handLabel) hand.set(Number(key), { label: handLabel, family });
    if (entry.label) published.set(Number(key), { label: entry.label, family });
  }
  return hand.size > 0
    ? { source: 'hand labels (neurons.json handLabel, or label from neuron-hand-labels.json)', labels: hand }
    : { source: 'published labels (neurons.json label)', labels: published };
}

/** Agreement of ranked automatic labels with the reference, per family and for all. */
export function agreementRows(
  reference: ReadonlyMap<number, { label: string; family: string }>,
  automatic: ReadonlyMap<number, readonly string[]>,
): AgreementRow[] {
  const rows = new Map<string, AgreementRow>();
  const ids = [...reference.keys()].filter((id) => (automatic.get(id)?.length ?? 0) > 0);
  const tops = ids.map((id) => automatic.get(id)![0]);
  for (const id of ids) {
    const { label, family } = reference.get(id)!;
    const ranked = automatic.get(id)!;
    const same = (concept: string) => concept.trim().toLowerCase() === label.trim().toLowerCase();
    const chance = tops.filter((top) => sharesWord(top, label)).length / tops.length;
    for (const key of [family, 'all']) {
      let row = rows.get(key);
      if (!row) {
        row = {
          family: key,
          neurons: 0,
          exactTop1: 0,
          exactTop3: 0,
          wordTop1: 0,
          wordTop3: 0,
          chanceTop1: 0,
        };
        rows.set(key, row);
      }
      row.neurons++;
      if (same(ranked[0])) row.exactTop1++;
      if (ranked.slice(0, 3).some(same)) row.exactTop3++;
      if (sharesWord(ranked[0], label)) row.wordTop1++;
      if (ranked.slice(0, 3).some((concept) => sharesWord(concept, label))) row.wordTop3++;
      row.chanceTop1 += chance;
    }
  }
  return [...rows.values()].sort((a, b) =>
    a.family === 'all' ? 1 : b.family === 'all' ? -1 : a.family.localeCompare(b.family),
  );
}

/** The automatic catalogue of a model under a DATA_DIR (what the labelling job wrote). */
export async function readAutomatic(
  modelDir: string,
  dataDir: string,
): Promise<AutomaticCatalogue | undefined> {
  const sha = createHash('sha256')
    .update(await readFile(path.join(modelDir, 'clip.json')))
    .digest('hex');
  try {
    const file = path.join(dataDir, 'neuron-labels', sha.slice(0, 16), 'automatic.json');
    const catalogue = JSON.parse(await readFile(file, 'utf8')) as AutomaticCatalogue;
    return catalogue.format === AUTOMATIC_FORMAT && catalogue.model === sha ? catalogue : undefined;
  } catch {
    return undefined;
  }
}

/** Labels every neuron in process (the app on MODEL_DIR and DATA_DIR), as POST /v1/neurons/labels does. */
async function buildCatalogue(modelDir: string, dataDir: string, collection: string): Promise<void> {
  const { buildApp } = await import('../app.js');
  const { loadConfig } = await import('../config.js');
  const app = await buildApp({
    config: { ...loadConfig(), modelDir, dataDir, warmDefaultFit: false, maxEventLoopDelayMs: 0 },
    logger: false,
  });
  try {
    await app.ready();
    await app.words.settled();
    for (;;) {
      const manifest = await app.collections.get(collection);
      if (manifest.build.state === 'completed' && manifest.images > 0) break;
      if (manifest.build.state === 'failed') throw new Error(`the build of "${collection}" failed`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    const { jobId } = await app.neuronLabels.submit(collection, 'label-agreement');
    for (;;) {
      const view = await app.jobs.get(jobId);
      if (view?.state === 'completed') return;
      if (!view || view.state === 'failed' || view.state === 'cancelled')
        throw new Error(`the labelling job ${jobId} ${view?.state ?? 'is gone'}: ${view?.error ?? ''}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  } finally {
    await app.close();
  }
}

export async function labelAgreement(options: {
  modelDir: string;
  dataDir: string;
  collection?: string;
  build?: boolean;
}): Promise<AgreementReport> {
  const { modelDir, dataDir } = options;
  const collection = options.collection ?? PROBE_COLLECTION;
  let automatic = await readAutomatic(modelDir, dataDir);
  if ((!automatic || automatic.collection !== collection) && options.build) {
    await buildCatalogue(modelDir, dataDir, collection);
    automatic = await readAutomatic(modelDir, dataDir);
  }
  if (!automatic || automatic.collection !== collection) {
    throw new AgreementUnavailable(
      `no automatic catalogue from collection "${collection}" under ${dataDir}${automatic ? ` (it is from "${automatic.collection}")` : ''}: label the model with POST /v1/neurons/labels {"collection": "${collection}"} on a server with this DATA_DIR, or pass --build`,
    );
  }
  const catalogue = JSON.parse(await readFile(path.join(modelDir, 'neurons.json'), 'utf8').catch(() => '{}'));
  const reference = referenceLabels(catalogue as Record<string, NeuronEntry>);
  if (reference.labels.size === 0) {
    throw new AgreementUnavailable(
      `${modelDir}/neurons.json has no hand or published labels to compare with`,
    );
  }
  const ranked = new Map(
    automatic.neurons.map((entry) => [entry.id, entry.labels.map((label) => label.concept)]),
  );
  const disagreements: AgreementReport['disagreements'] = [];
  for (const [neuron, { label }] of reference.labels) {
    const labels = ranked.get(neuron) ?? [];
    if (labels.length > 0 && !sharesWord(labels[0], label) && disagreements.length < 20) {
      disagreements.push({ neuron, hand: label, automatic: labels.slice(0, 3) });
    }
  }
  return {
    model: automatic.model,
    neurons: automatic.neurons.length,
    reference: { source: reference.source, labels: reference.labels.size },
    automatic: {
      collection: automatic.collection,
      images: automatic.images,
      jobId: automatic.jobId,
      finishedAt: automatic.finishedAt,
      multimodalShare: automatic.multimodalShare,
    },
    rows: agreementRows(reference.labels, ranked),
    disagreements,
  };
}

function table(report: AgreementReport): string {
  const percent = (k: number, n: number) => `${((100 * k) / Math.max(1, n)).toFixed(1)}%`;
  return [
    `automatic labels from "${report.automatic.collection}" (${report.automatic.images} images, job ${report.automatic.jobId}) against ${report.reference.labels} ${report.reference.source}`,
    '',
    '| family | neurons | exact top-1 | exact top-3 | word top-1 | word top-3 | word top-1 by chance |',
    '|---|---|---|---|---|---|---|',
    ...report.rows.map(
      (r) =>
        `| ${r.family} | ${r.neurons} | ${percent(r.exactTop1, r.neurons)} | ${percent(r.exactTop3, r.neurons)} | ${percent(r.wordTop1, r.neurons)} | ${percent(r.wordTop3, r.neurons)} | ${percent(r.chanceTop1, r.neurons)} |`,
    ),
    '',
    `multimodal (the measure of docs/neuron-evidence.md) on "${report.automatic.collection}": ${
      report.automatic.multimodalShare === null
        ? 'not measured (no categories)'
        : percent(report.automatic.multimodalShare, 1)
    } of ${report.neurons} neurons`,
  ].join('\n');
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      collection: { type: 'string', default: PROBE_COLLECTION },
      build: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  if (positionals.length !== 1) {
    console.error('usage: npm run label-agreement -- MODEL_DIR [--collection probe] [--build] [--json]');
    return 1;
  }
  const { loadConfig } = await import('../config.js');
  const modelDir = path.resolve(positionals[0]);
  try {
    const report = await labelAgreement({
      modelDir,
      dataDir: loadConfig({ ...process.env, MODEL_DIR: modelDir }).dataDir,
      collection: values.collection,
      build: values.build,
    });
    console.log(values.json ? JSON.stringify(report) : table(report));
    return 0;
  } catch (error) {
    if (error instanceof AgreementUnavailable) {
      console.error(error.message);
      return 2;
    }
    throw error;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (error: Error) => {
      console.error(error.message);
      process.exit(1);
    },
  );
}
