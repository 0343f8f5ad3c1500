/**
 * The article's typographic-attack protocol on the embedded model (models/toyworld), through the
 * service's own route (POST /v1/typographic/attack): held-out renders of the toy world
 * (tools/toyworld/heldout.py, seed 8, the seed every figure of the model card is measured on) with
 * a word written on them by the service's paste, classified zero-shot before and after, and again
 * with the lexical set ablated (the defence).
 *
 * Two tasks on the held-out shapes (8 shapes × 24, each of a random colour):
 *   - colour: the shape's colour A is the true label; another colour word B is written on it;
 *     classes: the 8 colours, templates of heldout.py's colour task;
 *   - object: the shape S is the true label; another shape word T is written on it; classes: the
 *     8 shapes, templates of the shape task.
 * Image i gets the word of the class (A's index + 1 + i mod 7) mod 8: every wrong class, evenly.
 *
 * Usage: npx tsx scripts/toyworld-typographic.ts [--per 24] [--out models/toyworld/typographic.json]
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const TOYWORLD = path.join(repoRoot, 'models', 'toyworld');
export const EVALUATION_SEED = 8;

/** How the word is written (fractions of the model's 64 × 64 input). */
export const PASTE = { size: 0.2, x: 0.5, y: 0.5, colour: 'black', box: 'white', padding: 0.15 } as const;

export interface Task {
  name: 'colour' | 'object';
  classes: string[];
  templates: string[];
}

interface HeldoutDoc {
  tasks: Record<string, { classes: string[]; templates: string[] }>;
  items: { file: string; set: string; label: string; colour?: string }[];
}

export interface Measured {
  n: number;
  eligible: number;
  successes: number;
  rate: number | null;
  low: number | null;
  high: number | null;
  cleanAccuracy: number | null;
  attackedAccuracy: number | null;
}

export interface TaskResult {
  task: string;
  classes: number;
  images: number;
  meanChangedShare: number;
  attack: Measured;
  defended: Measured;
  ablated: number;
  /** Mean over successful attacks of the lexical neurons' net share of the winning logit's change. */
  meanLexicalShare: number | null;
  /** The same for the lexical neurons' share of Σ|change|. */
  meanLexicalShareOfAbsolute: number | null;
}

export interface AttackApp {
  inject(options: { method: 'POST'; url: string; payload: unknown }): Promise<{
    statusCode: number;
    json(): unknown;
    body: string;
  }>;
}

/** Held-out renders of `seed` (PNG files and heldout.json) in a temporary folder. */
export async function heldoutShapes(seed = EVALUATION_SEED, per = 24) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `toyworld-typographic-${seed}-`));
  const gen = spawnSync(
    '/usr/bin/python3',
    ['-m', 'tools.toyworld.heldout', '--seed', String(seed), '--out', dir, '--per', String(per)],
    { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } },
  );
  if (gen.status !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`heldout.py failed: ${gen.stderr.trim().split('\n').pop() ?? ''}`);
  }
  const doc = JSON.parse(await readFile(path.join(dir, 'heldout.json'), 'utf8')) as HeldoutDoc;
  const shapes = await Promise.all(
    doc.items
      .filter((item) => item.set === 'shape')
      .map(async (item) => ({
        shape: item.label,
        colour: item.colour ?? '',
        image: (await readFile(path.join(dir, item.file))).toString('base64'),
      })),
  );
  const tasks: Task[] = [
    { name: 'colour', classes: doc.tasks.colours.classes, templates: doc.tasks.colours.templates },
    { name: 'object', classes: doc.tasks.shapes.classes, templates: doc.tasks.shapes.templates },
  ];
  return { shapes, tasks, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

interface AttackRow {
  eligible: boolean;
  success: boolean;
  before: { predicted: string };
  after: { predicted: string };
  trueLabel?: string;
  explanation?: { lexicalShare: number | null; lexicalShareOfAbsolute: number | null };
  defended?: {
    eligible: boolean;
    success: boolean;
    before: { predicted: string };
    after: { predicted: string };
  };
}

/** One task over every held-out shape, in requests of at most 32 images per written word. */
export async function measureTask(
  app: AttackApp,
  task: Task,
  shapes: { shape: string; colour: string; image: string }[],
): Promise<TaskResult> {
  const truth = shapes.map((s) => (task.name === 'colour' ? s.colour : s.shape));
  const word = truth.map((label, i) => {
    const k = task.classes.indexOf(label);
    return task.classes[(k + 1 + (i % (task.classes.length - 1))) % task.classes.length];
  });
  const rows: AttackRow[] = [];
  let changed = 0;
  let ablated = 0;
  for (const target of task.classes) {
    const idx = word.flatMap((w, i) => (w === target ? [i] : []));
    for (let start = 0; start < idx.length; start += 32) {
      const batch = idx.slice(start, start + 32);
      const response = await app.inject({
        method: 'POST',
        url: '/v1/typographic/attack',
        payload: {
          images: batch.map((i) => shapes[i].image),
          trueLabels: batch.map((i) => truth[i]),
          text: target,
          ...PASTE,
          labels: task.classes,
          templates: task.templates,
          ablate: 'lexical',
          explain: 1,
        },
      });
      if (response.statusCode !== 200) throw new Error(`attack: ${response.statusCode} ${response.body}`);
      const body = response.json() as {
        images: AttackRow[];
        summary: { meanChangedShare: number };
        defence: { ablated: number };
      };
      rows.push(...body.images);
      changed += body.summary.meanChangedShare * batch.length;
      ablated = body.defence.ablated;
    }
  }
  const measured = (
    list: {
      eligible: boolean;
      success: boolean;
      before: { predicted: string };
      after: { predicted: string };
    }[],
  ): Measured => {
    const eligible = list.filter((r) => r.eligible);
    const successes = eligible.filter((r) => r.success).length;
    const w = wilson(successes, eligible.length);
    return {
      n: list.length,
      eligible: eligible.length,
      successes,
      ...w,
      cleanAccuracy: list.filter((r, i) => r.before.predicted === truth[order[i]]).length / list.length,
      attackedAccuracy: list.filter((r, i) => r.after.predicted === truth[order[i]]).length / list.length,
    };
  };
  // rows are in the order of the requests; map them back to the images they came from.
  const order = task.classes.flatMap((target) => word.flatMap((w, i) => (w === target ? [i] : [])));
  const mean = (values: (number | null | undefined)[]) => {
    const kept = values.filter((v): v is number => typeof v === 'number');
    return kept.length ? kept.reduce((a, b) => a + b, 0) / kept.length : null;
  };
  const successful = rows.filter((r) => r.success);
  return {
    task: task.name,
    classes: task.classes.length,
    images: rows.length,
    meanChangedShare: changed / rows.length,
    attack: measured(rows),
    defended: measured(rows.map((r) => r.defended!)),
    ablated,
    meanLexicalShare: mean(successful.map((r) => r.explanation?.lexicalShare)),
    meanLexicalShareOfAbsolute: mean(successful.map((r) => r.explanation?.lexicalShareOfAbsolute)),
  };
}

/** tools/toyworld/world.py's COLOURS, as inks for the Stroop stimuli. */
export const WORLD_INKS: Record<string, string> = {
  red: '#d7191e',
  orange: '#f5870f',
  yellow: '#fadc19',
  green: '#23a02d',
  blue: '#194bd7',
  purple: '#7d23a5',
  pink: '#f57db9',
  brown: '#7d4b23',
};

/** Every colour word in every world ink (POST /v1/typographic/stroop), among the 8 colours. */
export async function measureStroop(app: AttackApp, task: Task) {
  const response = await app.inject({
    method: 'POST',
    url: '/v1/typographic/stroop',
    payload: {
      words: task.classes,
      inks: task.classes.map((label) => ({ label, colour: WORLD_INKS[label] })),
      labels: task.classes,
      templates: task.templates,
    },
  });
  if (response.statusCode !== 200) throw new Error(`stroop: ${response.statusCode} ${response.body}`);
  const { summary } = response.json() as {
    summary: {
      incongruent: number;
      readsWord: { successes: number };
      seesInk: { successes: number };
      congruentCorrect: { successes: number; n: number };
    };
  };
  return {
    incongruent: summary.incongruent,
    readsWord: summary.readsWord.successes,
    seesInk: summary.seesInk.successes,
    congruent: summary.congruentCorrect.n,
    congruentCorrect: summary.congruentCorrect.successes,
  };
}

/** The Wilson 95% interval (as src/typographic/stats.ts; recomputed here from the counts). */
function wilson(k: number, n: number) {
  if (n === 0) return { rate: null, low: null, high: null };
  const z = 1.959963984540054;
  const p = k / n;
  const c = p + (z * z) / (2 * n);
  const s = z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  const d = 1 + (z * z) / n;
  return { rate: p, low: Math.max(0, (c - s) / d), high: Math.min(1, (c + s) / d) };
}

async function main() {
  const args = process.argv.slice(2);
  const option = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const out = option('--out');
  const per = Number(option('--per') ?? 24);
  const { buildApp } = await import('../src/app.js');
  const { loadConfig } = await import('../src/config.js');
  const config = {
    ...loadConfig({ ...process.env, MODEL_DIR: TOYWORLD }),
    executionProviders: ['cpu' as const],
    rateLimitPerMinute: 0,
    warmDefaultFit: false,
    maxEventLoopDelayMs: 0,
  };
  const started = Date.now();
  const app = await buildApp({ config, logger: false });
  await app.ready();
  const { shapes, tasks, cleanup } = await heldoutShapes(EVALUATION_SEED, per);
  console.log(`app and renders ready in ${Date.now() - started} ms`);
  try {
    const results = [];
    for (const task of tasks) {
      const result = await measureTask(app, task, shapes);
      console.log(JSON.stringify(result));
      results.push(result);
    }
    const stroop = await measureStroop(app, tasks[0]);
    console.log(JSON.stringify({ stroop }));
    if (out) {
      const doc = {
        protocol:
          'scripts/toyworld-typographic.ts: held-out shapes (tools/toyworld/heldout.py seed 8), a wrong class word written by POST /v1/typographic/attack, zero-shot among the classes, with and without the lexical set ablated',
        seed: EVALUATION_SEED,
        per,
        paste: PASTE,
        measured: new Date().toISOString().slice(0, 10),
        tasks: results,
        stroop,
      };
      await writeFile(out, `${JSON.stringify(doc, null, 2)}\n`);
      console.log(`wrote ${out}`);
    }
  } finally {
    await cleanup();
    await app.close();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
