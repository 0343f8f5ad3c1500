/**
 * The text-side index's word rows shared by the processes of one DATA_DIR
 * (src/evidence/shared-text-rows.ts), on the reference model's real encoders: builds that share a
 * directory split its chunks (every word computed once between them) and give the index a build of
 * their own gives, bit for bit; a later build reads every chunk; a chunk whose bytes were changed
 * is computed again, with a warning; and a chunk is never read for another model.
 */
import t, { type Test } from 'tap';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SharedTextRows } from '../src/evidence/shared-text-rows.js';
import { buildTextSideIndex, SPEAKING_TEMPLATES, type TextSideIndex } from '../src/evidence/text-index.js';
import { buildTestApp } from './helpers/app.js';

const app = await buildTestApp();
t.teardown(() => app.close());
const dir = await mkdtemp(path.join(os.tmpdir(), 'mmn-shared-text-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const WORDS = 150;
const CHUNK = 32; // 5 chunks, the last of 22 rows
const words = Array.from({ length: WORDS }, (_, i) => `word number ${i}`);
const texts = [...words, 'dog', 'cat']; // the word rows, then two categories of a collection

/** A build with counting encoders: how many word texts each computed. */
function build(shared?: SharedTextRows): { index: Promise<TextSideIndex>; computed: Set<string> } {
  const computed = new Set<string>();
  const index = buildTextSideIndex({
    texts,
    templates: SPEAKING_TEMPLATES,
    neuronCount: app.clip.neuronCount,
    embedDim: app.clip.embedDim,
    attribution: (text, templates) => {
      computed.add(text);
      return app.attribution.textVector(text, 'unit', templates);
    },
    embeddings: (prompts) => app.encoders.textEmbeddings(prompts),
    batch: 16,
    shared: shared && { rows: shared, words: WORDS },
  });
  return { index, computed };
}

const warnings: string[] = [];
const rows = (model = app.clip.sha256) =>
  new SharedTextRows({
    dir,
    model,
    provider: 'cpu',
    chunk: CHUNK,
    warn: (message) => warnings.push(message),
  });

function sameIndex(t: Test, got: TextSideIndex, want: TextSideIndex, what: string): void {
  t.same(got.texts, want.texts, `${what}: the same texts`);
  t.ok(
    Buffer.from(got.attributions.buffer).equals(Buffer.from(want.attributions.buffer)),
    `${what}: attributions bit for bit`,
  );
  t.ok(
    Buffer.from(got.embeddings.buffer).equals(Buffer.from(want.embeddings.buffer)),
    `${what}: embeddings bit for bit`,
  );
}

const alone = await build().index;

t.test('two builds sharing a directory split the chunks and give the index of a build alone', async (t) => {
  const [a, b] = [build(rows()), build(rows())];
  const [indexA, indexB] = await Promise.all([a.index, b.index]);
  sameIndex(t, indexA, alone, 'first build');
  sameIndex(t, indexB, alone, 'second build');
  const wordsA = [...a.computed].filter((text) => words.includes(text));
  const wordsB = [...b.computed].filter((text) => words.includes(text));
  t.equal(wordsA.length + wordsB.length, WORDS, 'every word computed once between them');
  t.ok(
    wordsA.length > 0 && wordsB.length > 0,
    `both computed chunks (${wordsA.length} and ${wordsB.length} words)`,
  );
  t.ok(
    a.computed.has('dog') && b.computed.has('dog'),
    "a collection's categories are computed by each build",
  );
  const folder = (await readdir(dir))[0];
  const files = (await readdir(path.join(dir, folder))).sort();
  t.same(
    files,
    ['chunk-0.f32', 'chunk-1.f32', 'chunk-2.f32', 'chunk-3.f32', 'chunk-4.f32'],
    'five chunk files, no claims left',
  );
  t.same(warnings, []);
});

t.test('a later build reads every chunk; a changed chunk is computed again', async (t) => {
  const later = build(rows());
  sameIndex(t, await later.index, alone, 'read back');
  t.same(
    [...later.computed].filter((text) => words.includes(text)),
    [],
    'no word computed',
  );

  const folder = path.join(dir, (await readdir(dir))[0]);
  const file = path.join(folder, 'chunk-2.f32');
  const bytes = await readFile(file);
  bytes[bytes.length - 1] ^= 0x01;
  await writeFile(file, bytes);
  const repaired = build(rows());
  sameIndex(t, await repaired.index, alone, 'after the change');
  t.same(
    [...repaired.computed].filter((text) => words.includes(text)),
    words.slice(2 * CHUNK, 3 * CHUNK),
    'only the changed chunk is computed',
  );
  t.equal(warnings.length, 1);
  t.match(warnings[0], /chunk-2\.f32 is not usable \(.*does not match\); computing its rows again/);
  warnings.length = 0;
});

t.test("another model's build reads none of them", async (t) => {
  const other = build(rows('0'.repeat(64)));
  await other.index;
  t.equal([...other.computed].filter((text) => words.includes(text)).length, WORDS, 'every word computed');
  t.equal((await readdir(dir)).length, 2, 'in a folder of its own');
});
