/**
 * Scores the automatic neuron labels (src/evidence/, CLIP-Dissect's soft-WPMI) of the embedded model
 * against its planted concepts, on renders no truth was made from:
 *
 *   labels  from a collection of held-out renders of seed LABEL (default 11): every picture class,
 *           the concept names and every vocabulary word (tools/toyworld/heldout.py; attack images left
 *           out); the labels never see a category: soft-WPMI reads the images and the word list only;
 *   truth 1 the catalogue neurons.json, made by tools/toyworld/evaluate.py from seed 7's renders;
 *   truth 2 each neuron's preferred concept recomputed the same way on seed TRUTH (default 8): the
 *           family and concept whose renders give the highest mean activation.
 *
 * Prints, per truth, labelling (soft-WPMI alone, and combined with the reading side) and family, the
 * share of neurons whose top label (top 3) is the truth's word (exact) or names its concept (a
 * synonym or a phrase with a word of that concept, by world.py's WORD_CONCEPT); and the share of
 * neurons the multimodality measure calls multimodal on the label collection.
 *
 * With --probe the labels come from the model's probe collection instead (models/toyworld/probe.tar.gz,
 * installed at start: seed 100, 20 pictures per colour, shape and expression, 11 renders per word).
 *
 * --out FILE writes the soft-WPMI rows and the multimodal share as JSON (with --probe:
 * models/toyworld/neuron-labels.json, which tools/toyworld/card.py puts in the model card).
 *
 *   npx tsx scripts/toyworld-neuron-labels.ts [--label-seed 11] [--truth-seed 8] [--per 8] [--probe] [--out FILE]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildApp, type App } from '../src/app.js';
import { CollectionReader } from '../src/collections/reader.js';
import { FILES } from '../src/collections/store.js';
import { DEFAULT_MODEL_DIR, loadConfig } from '../src/config.js';
import { scoreLabels, scoreRows, type Truth } from '../src/evidence/scoring.js';

const REPO = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const PYTHON = '/usr/bin/python3';

export const FAMILY_OF_SET: Record<string, string> = {
  colour_patch: 'colour',
  shape: 'shape',
  face: 'expression',
  word: 'word',
  word_all: 'word',
};

export interface Item {
  file: string;
  set: string;
  label: string;
}

function python(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, {
      cwd: REPO,
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`python ${args.join(' ')}: ${err}`)),
    );
  });
}

/** Held-out renders of a seed (heldout.py) in `dir`. */
export async function heldout(seed: number, dir: string, per: number): Promise<Item[]> {
  await python(['-m', 'tools.toyworld.heldout', '--seed', String(seed), '--out', dir, '--per', String(per)]);
  return (JSON.parse(await readFile(path.join(dir, 'heldout.json'), 'utf8')) as { items: Item[] }).items;
}

/** The world's word → concept map (world.py's WORD_CONCEPT). */
export async function worldConcepts(): Promise<Record<string, string>> {
  return JSON.parse(
    await python([
      '-c',
      'import json; from tools.toyworld import world; print(json.dumps(world.WORD_CONCEPT))',
    ]),
  ) as Record<string, string>;
}

/** Creates collection `id` from renders, with the categories `category` gives (null: left out). */
export async function collect(
  app: App,
  id: string,
  dir: string,
  items: readonly Item[],
  category: (item: Item) => string | null,
): Promise<Item[]> {
  await app.collections.create(id, 'script');
  const kept = items.filter((item) => category(item) !== null);
  const uploads = await Promise.all(
    kept.map(async (item) => ({
      name: item.file,
      bytes: await readFile(path.join(dir, item.file)),
      category: category(item),
      caption: null,
    })),
  );
  await app.collections.addImages(id, uploads);
  await app.collections.settled(id);
  return kept;
}

/** Each neuron's preferred category (highest mean activation) in a collection, from its stored rows. */
export async function preferredCategory(app: App, id: string): Promise<(string | null)[]> {
  const manifest = await app.collections.get(id);
  const reader = new CollectionReader(app.collections.store, manifest);
  const codes = await reader.categoryCodes();
  const C = manifest.model.neurons;
  const K = manifest.categories.length;
  const sums = new Float64Array(K * C);
  const counts = new Array<number>(K).fill(0);
  await reader.scan(FILES.means, (rows, start, count) => {
    for (let r = 0; r < count; r++) {
      const k = codes[start + r];
      counts[k]++;
      for (let c = 0; c < C; c++) sums[k * C + c] += rows[r * C + c];
    }
  });
  return Array.from({ length: C }, (_, c) => {
    let best = 0;
    for (let k = 1; k < K; k++) if (sums[k * C + c] / counts[k] > sums[best * C + c] / counts[best]) best = k;
    return sums[best * C + c] / counts[best] > 1e-6 ? manifest.categories[best] : null;
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'label-seed': { type: 'string', default: '11' },
      'truth-seed': { type: 'string', default: '8' },
      per: { type: 'string', default: '8' },
      probe: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  });
  const labelSeed = Number(values['label-seed']);
  const truthSeed = Number(values['truth-seed']);
  const per = Number(values.per);
  if ([labelSeed, truthSeed].includes(7) || labelSeed === truthSeed) {
    throw new Error('the label seed must differ from the truth seed and from the catalogue’s seed 7');
  }
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'neuron-labels-'));
  const app = await buildApp({
    config: {
      ...loadConfig({ COLLECTION_PROBE: values.probe ? 'true' : 'false' }),
      modelDir: DEFAULT_MODEL_DIR,
      dataDir: path.join(tmp, 'data'),
      warmDefaultFit: false,
      maxEventLoopDelayMs: 0,
      rateLimitPerMinute: 0,
    },
    logger: false,
  });
  try {
    await app.ready();
    const labelDir = path.join(tmp, `seed-${labelSeed}`);
    const truthDir = path.join(tmp, `seed-${truthSeed}`);
    const [labelItems, truthItems, wordConcept] = await Promise.all([
      values.probe ? Promise.resolve([]) : heldout(labelSeed, labelDir, per),
      heldout(truthSeed, truthDir, per),
      worldConcepts(),
    ]);
    await app.words.settled();
    let labelCollection = 'labels';
    let described: string;
    if (values.probe) {
      labelCollection = 'probe';
      // The probe is staged and built in the background from the start: wait for its build.
      for (;;) {
        const manifest = await app.collections.get('probe').catch(() => undefined);
        if (manifest?.build.state === 'completed' && manifest.images > 0) {
          described = `the probe collection (probe.tar.gz, seed 100, ${manifest.images.toLocaleString('en')} renders)`;
          break;
        }
        if (manifest?.build.state === 'failed')
          throw new Error(`the probe build failed: ${manifest.build.error}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    } else {
      const kept = await collect(app, 'labels', labelDir, labelItems, (item) =>
        item.set === 'attack' ? null : item.label,
      );
      described = `seed ${labelSeed} (${kept.length} renders, ${per} per picture class)`;
    }
    await collect(app, 'truth', truthDir, truthItems, (item) =>
      FAMILY_OF_SET[item.set] ? `${FAMILY_OF_SET[item.set]}:${item.label}` : null,
    );
    const catalogue = JSON.parse(
      await readFile(path.join(DEFAULT_MODEL_DIR, 'neurons.json'), 'utf8'),
    ) as Record<string, Truth>;
    const C = app.clip.neuronCount;
    const truths: Record<string, (Truth | null)[]> = {
      'neurons.json (seed 7)': Array.from({ length: C }, (_, c) => catalogue[String(c)] ?? null),
      [`seed ${truthSeed}`]: (await preferredCategory(app, 'truth')).map((name) => {
        if (name === null) return null;
        const [family, label] = name.split(':');
        return { family, label };
      }),
    };
    const labels = await app.evidence.allLabels(labelCollection);
    const json: Record<string, unknown>[] = [];
    const rows = [
      '| truth, labels | family | neurons | top-1 | top-3 | top-1 concept | top-3 concept |',
      '|---|---|---|---|---|---|---|',
    ];
    for (const [name, truth] of Object.entries(truths)) {
      for (const method of ['dissect', 'combined'] as const) {
        const ranked = labels.map((neuron) => neuron[method].map((label) => label.concept));
        const scores = scoreLabels(ranked, truth, wordConcept);
        rows.push(...scoreRows(`${name}, ${method}`, scores));
        if (method !== 'dissect') continue;
        const percent = (k: number, n: number) => Math.round((1000 * k) / n) / 10;
        for (const [family, s] of Object.entries(scores).sort(([a], [b]) =>
          a === 'all' ? 1 : b === 'all' ? -1 : a.localeCompare(b),
        )) {
          json.push({
            truth: name,
            family,
            neurons: s.neurons,
            top1: percent(s.top1, s.neurons),
            top3: percent(s.top3, s.neurons),
            conceptTop1: percent(s.conceptTop1, s.neurons),
            conceptTop3: percent(s.conceptTop3, s.neurons),
          });
        }
      }
    }
    const list = await app.evidence.list({ collection: labelCollection, sort: 'id', offset: 0, limit: 1 });
    console.log(`labels from ${described}, truth from seed 7 (the catalogue) and seed ${truthSeed}`);
    console.log(rows.join('\n'));
    console.log(
      `multimodal (top category in the top 5 of both the speaking and the reading side) on ${labelCollection}: ${(100 * (list.multimodalShare ?? 0)).toFixed(1)}% of ${C} neurons`,
    );
    if (values.out) {
      const doc = {
        script: `npx tsx scripts/toyworld-neuron-labels.ts${values.probe ? ' --probe' : ` --label-seed ${labelSeed}`}`,
        labels: `${described}, soft-WPMI (CLIP-Dissect), the label the whole-model labelling job serves`,
        method: 'dissect',
        percent: true,
        rows: json,
        multimodalShare: Math.round(1000 * (list.multimodalShare ?? 0)) / 10,
        measuredNeurons: C,
        run: new Date().toISOString().slice(0, 10),
      };
      await writeFile(values.out, `${JSON.stringify(doc, null, 1)}\n`);
    }
  } finally {
    await app.close();
    await rm(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
