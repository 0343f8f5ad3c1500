/**
 * `npm run lexical-overlap -- MODEL_DIR` (src/bin/lexical-overlap.ts) on the random-weight tiny model
 * flow (the export tests' checkpoint): with the catalogue's lexical family as the reference (a copy of
 * the model directory whose neurons.json marks some neurons lexical, as an RN50x4 export marks the
 * article's ids) and with --reference; the index is built with --build on a short word list.
 * Without a reference set, or without an index and --build, it exits 2 saying what to do.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { overlapReport, type OverlapReport } from '../src/bin/lexical-overlap.js';
import { defaultWords } from '../src/words/vocabulary.js';
import { prepareTinyModel, repoRoot } from './helpers/tiny-model.js';

function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(repoRoot, 'src/bin/lexical-overlap.ts'), ...args],
      {
        cwd: repoRoot,
        env: { ...process.env, ORT_PROVIDERS: 'cpu', WORD_RENDER_THREADS: '0', REDIS_URL: '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

t.test('overlapReport: counts, precision, recall, chance and AUC', async (t) => {
  const score = [0.9, 0.8, 0.1, 0.7, 0.2, 0.0, 0.6, 0.3];
  const { auc, rows } = overlapReport(score, [0, 1, 2], [0.5]);
  t.same(rows, [
    { threshold: 0.5, flagged: 4, overlap: 2, precision: 0.5, recall: 2 / 3, jaccard: 2 / 5, chance: 1.5 },
  ]);
  t.equal(auc, 11 / 15, 'neurons 0 and 1 outrank every other; 2 outranks only 5');
});

t.test('on the tiny model: reference from the catalogue, and from a file', async (t) => {
  const tiny = await prepareTinyModel({ seed: 1 });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lexical-overlap-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // A copy of the model directory whose catalogue marks 40 neurons lexical (clip.json's hash follows).
  const modelDir = path.join(dir, 'model');
  await cp(tiny.modelDir, modelDir, { recursive: true });
  const lexicalIds = Array.from({ length: 40 }, (_, i) => i * 12);
  const catalogue = Object.fromEntries(
    lexicalIds.map((id) => [String(id), { family: 'lexical', source: 'test: lexical-neurons.json' }]),
  );
  const catalogueText = JSON.stringify(catalogue);
  await writeFile(path.join(modelDir, 'neurons.json'), catalogueText);
  const manifestFile = path.join(modelDir, 'clip.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as { files: Record<string, string> };
  manifest.files['neurons.json'] = createHash('sha256').update(catalogueText).digest('hex');
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
  const words = path.join(dir, 'words.txt');
  await writeFile(words, (await defaultWords(300)).join('\n'));
  const env = { DATA_DIR: path.join(dir, 'data') };

  const missing = await run([modelDir, '--words', words], env);
  t.equal(missing.code, 2, 'no index and no --build: exit 2');
  t.match(missing.stderr, /npm run index-words/);

  const fromCatalogue = await run([modelDir, '--words', words, '--build', '--json'], env);
  t.equal(fromCatalogue.code, 0, fromCatalogue.stderr);
  const report = JSON.parse(fromCatalogue.stdout) as OverlapReport;
  t.equal(report.neurons, 512);
  t.same(report.reference.ids, lexicalIds, 'the catalogue’s lexical family is the reference');
  t.match(report.reference.source, /test: lexical-neurons\.json/);
  t.equal(report.method, 'ridge-cv-r2-spelling');
  t.same(
    report.rows.map((r) => r.threshold),
    [0.25, 0.3, 0.35, 0.4, 0.5],
  );
  for (const row of report.rows) {
    t.ok(row.overlap <= Math.min(row.flagged, 40));
    t.equal(row.chance, (row.flagged * 40) / 512);
    t.equal(row.recall, row.overlap / 40);
  }
  t.ok(report.auc >= 0 && report.auc <= 1);
  const atDefault = report.rows.find((r) => r.threshold === 0.35)!;
  t.equal(report.missed.length, 40 - atDefault.overlap, 'the missed ids are listed');
  t.comment(`random weights: ${JSON.stringify(atDefault)}, AUC ${report.auc.toFixed(3)}`);

  const ids = path.join(dir, 'ids.json');
  await writeFile(ids, JSON.stringify([5, 5, 7, 9]));
  const fromFile = await run([modelDir, '--words', words, '--reference', ids, '--threshold', '0.3'], env);
  t.equal(fromFile.code, 0, fromFile.stderr);
  t.match(fromFile.stdout, /reference: 3 neurons/, 'ids deduplicated (the article lists 758 twice)');
  t.match(fromFile.stdout, /\| 0\.3 \| \d+ \| \d+ \|/, 'a Markdown table, one row per threshold');

  const bad = path.join(dir, 'bad.json');
  await writeFile(bad, JSON.stringify([1, 9999]));
  const outOfRange = await run([modelDir, '--words', words, '--reference', bad], env);
  t.equal(outOfRange.code, 1);
  t.match(outOfRange.stderr, /neuron ids from 0 to 511/);

  const noReference = await run([tiny.modelDir, '--words', words], env);
  t.equal(noReference.code, 2, 'no lexical neurons in the catalogue and no --reference: exit 2');
  t.match(noReference.stderr, /--reference/);
});
