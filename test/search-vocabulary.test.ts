/**
 * The vocabulary's embeddings, computed once per model and shared (src/search/vocabulary.ts), give
 * the same searches as before, bit for bit: against results recorded by the code before the change
 * (test/fixtures/max-text-recorded.json: every search ran its own pass over the vocabulary), and
 * whether the embeddings were computed now, held in memory, read from the shared file or computed
 * by another process. A direction's scores over them are exactly the per-search pass's. A file
 * that is not this model's (another model's header, a changed payload) is never trusted.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { createCache } from '../src/cache/index.js';
import { ClipModel } from '../src/clip/clip-model.js';
import { DEFAULT_MODEL_DIR, loadConfig } from '../src/config.js';
import { modelScorer, singleTokenScores } from '../src/search/candidate-pool.js';
import { searchMaxText, searchSetup, type MaxTextResult } from '../src/search/max-text.js';
import { neuronProjection } from '../src/search/objective.js';
import { normaliseRequest, requestHash, type MaxTextBody } from '../src/search/request.js';
import { VocabularyEmbeddings, vocabularyOf } from '../src/search/vocabulary.js';
import { searchProcessor } from '../src/jobs/processor.js';
import { referenceModelDir } from './helpers/app.js';
import { repoRoot } from './helpers/tiny-model.js';

const options = { ...loadConfig({}), executionProviders: ['cpu' as const], intraOpThreads: 1 };
const quiet = { info() {}, warn() {}, error() {} };

interface Recorded {
  sha256: string;
  results: { body: MaxTextBody; result: MaxTextResult; pool: string }[];
}
const recorded = JSON.parse(
  readFileSync(path.join(repoRoot, 'test/fixtures/max-text-recorded.json'), 'utf8'),
) as Record<'toyworld' | 'reference-small', Recorded>;

/** A result as JSON without its wall-clock time: equal strings are equal numbers, bit for bit. */
const exact = (result: MaxTextResult) => JSON.stringify({ ...result, elapsedMs: 0 });

async function compareWithRecorded(
  t: Test,
  model: ClipModel,
  fixture: Recorded,
  vocabulary: () => VocabularyEmbeddings,
  label: string,
): Promise<void> {
  for (const { body, result, pool } of fixture.results) {
    // A fresh cache each time: the pool's scores come from the vocabulary, not from a cached entry.
    const cache = createCache({ ttlSeconds: 600, logger: quiet });
    const request = normaliseRequest(body, model.neuronCount);
    const searched = await searchMaxText(model, cache, request, { vocabulary: vocabulary() });
    t.equal(exact(searched), JSON.stringify(result), `${label}: ${JSON.stringify(body).slice(0, 50)}…`);
    const setup = await searchSetup(
      model,
      createCache({ ttlSeconds: 600, logger: quiet }),
      request,
      vocabulary(),
    );
    t.equal(
      createHash('sha256').update(JSON.stringify(setup.pool)).digest('hex'),
      pool,
      `${label}: its pool`,
    );
  }
}

/** The embedded model, loaded once for the tests that use it. */
let embedded: Promise<ClipModel> | undefined;
const embeddedModel = () => (embedded ??= ClipModel.load(DEFAULT_MODEL_DIR, options));
t.teardown(async () => {
  if (embedded) await (await embedded).release();
});

t.test(
  'embedded model: the recorded searches, cold, warm, from the file and from another process',
  async (t) => {
    const model = await embeddedModel();
    const fixture = recorded.toyworld;
    t.equal(model.sha256, fixture.sha256, 'the embedded model is the one the fixture was recorded on');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'search-vocabulary-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));

    // Cold: every search in a vocabulary of its own, computed in the search (nothing on disk).
    await compareWithRecorded(t, model, fixture, () => new VocabularyEmbeddings(model), 'computed');
    // Warm: one vocabulary for all, computed by the first search and written to the file.
    const shared = new VocabularyEmbeddings(model, { dir });
    await compareWithRecorded(t, model, fixture, () => shared, 'in memory');
    t.equal((await shared.rows()).source, 'computed');
    t.same(await readdir(dir), [path.basename(shared.file!)], 'one file, no temporary left');
    // Read from the file by a vocabulary that has not computed anything.
    const fromFile = new VocabularyEmbeddings(model, { dir });
    t.equal((await fromFile.rows()).source, 'file');
    await compareWithRecorded(t, model, fixture, () => fromFile, 'read from the file');

    // Another process computes it into a directory of its own; this one reads its file.
    const other = path.join(dir, 'other');
    const printed = execFileSync(
      process.execPath,
      ['--import', 'tsx', path.join(repoRoot, 'test/helpers/vocabulary-child.ts'), DEFAULT_MODEL_DIR, other],
      { cwd: repoRoot, encoding: 'utf8' },
    );
    t.equal(printed.trim(), 'computed', 'the other process computed it');
    t.equal(
      createHash('sha256')
        .update(await readFile(path.join(other, path.basename(shared.file!))))
        .digest('hex'),
      createHash('sha256')
        .update(await readFile(shared.file!))
        .digest('hex'),
      'the same bytes as this process wrote',
    );
    const fromOther = new VocabularyEmbeddings(model, { dir: other });
    t.equal((await fromOther.rows()).source, 'file');
    await compareWithRecorded(t, model, fixture, () => fromOther, "read from another process's file");
  },
);

t.test('embedded model: a file that is not this model’s is never trusted', async (t) => {
  const model = await embeddedModel();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'search-vocabulary-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const first = new VocabularyEmbeddings(model, { dir });
  const rows = await first.rows();
  const file = first.file!;
  const good = await readFile(file);
  const headerLength = good.readUInt32LE(0);
  const header = JSON.parse(good.subarray(4, 4 + headerLength).toString('utf8')) as Record<string, unknown>;

  const attempt = async (bytes: Buffer, why: RegExp) => {
    await writeFile(file, bytes);
    const warnings: string[] = [];
    const fresh = new VocabularyEmbeddings(model, { dir, warn: (message) => warnings.push(message) });
    const again = await fresh.rows();
    t.equal(again.source, 'computed', `recomputed: ${why}`);
    t.match(warnings.join('\n'), why);
    t.same(Buffer.compare(Buffer.from(again.embeddings.buffer), Buffer.from(rows.embeddings.buffer)), 0);
    t.same(await readFile(file), good, 'and the file rewritten');
  };
  // Another model's header, the same length (the sha256 is hex of the same length).
  const otherModel = Buffer.from(good);
  const forged = JSON.stringify({ ...header, model: 'f'.repeat(64) });
  t.equal(forged.length, headerLength);
  otherModel.write(forged, 4, 'utf8');
  await attempt(otherModel, /model differs/);
  // One float changed in the payload.
  const changed = Buffer.from(good);
  changed[changed.length - 2] ^= 0x40;
  await attempt(changed, /payload does not match/);
  // Cut short (a write that never finished would not have been renamed, but a disk can fill).
  await attempt(good.subarray(0, good.length - 100), /wrong size/);
});

t.test('a search job shares the vocabulary through DATA_DIR/max-text', async (t) => {
  const model = await embeddedModel();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'search-vocabulary-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const cache = createCache({ ttlSeconds: 600, logger: quiet });
  const processor = searchProcessor(model, cache, { dataDir });
  const { body, result } = recorded.toyworld.results[0];
  const request = normaliseRequest(body, model.neuronCount);
  const outcome = await processor(
    { request, hash: requestHash(model.sha256, request) },
    { reportProgress: async () => {}, isCancelled: async () => false },
  );
  t.equal(outcome.cancelled, false);
  t.equal(exact(outcome.result!), JSON.stringify(result), 'the recorded result');
  const file = vocabularyOf(model).file!;
  t.equal(path.dirname(file), path.join(dataDir, 'max-text'));
  t.equal(
    (await stat(file)).size > model.tokenizer.vocabSize * model.embedDim * 4,
    true,
    'the file is written',
  );
});

t.test(
  'reference model (CLIP’s 49,408 tokens): the scores are the per-search pass’s, bit for bit',
  async (t) => {
    const model = await ClipModel.load(await referenceModelDir(), options);
    t.teardown(() => model.release());
    const vocabulary = new VocabularyEmbeddings(model);
    for (const neuron of [5, 200]) {
      const u = neuronProjection(model.bilinear, neuron, model.embedDim);
      const reference = await singleTokenScores(model, modelScorer(model, u));
      const shared = await vocabulary.scores(u);
      t.equal(
        Buffer.compare(Buffer.from(shared.buffer), Buffer.from(reference.buffer)),
        0,
        `neuron ${neuron}: ${model.tokenizer.vocabSize} scores identical`,
      );
    }
    const fixture = recorded['reference-small'];
    if (model.sha256 !== fixture.sha256) {
      // The export is made by the tests from the shared checkpoint: a changed exporter makes another.
      t.comment(`the reference export changed since the fixture was recorded (${model.sha256.slice(0, 12)})`);
      return;
    }
    await compareWithRecorded(t, model, fixture, () => vocabulary, 'reference, in memory');
  },
);
