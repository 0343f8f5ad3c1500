/**
 * A process of its own that computes a model's vocabulary embeddings into a shared directory
 * (test/search-vocabulary.test.ts): `node --import tsx test/helpers/vocabulary-child.ts MODEL_DIR DIR`.
 * Prints where its rows came from ("computed" or "file").
 */
import { ClipModel } from '../../src/clip/clip-model.js';
import { loadConfig } from '../../src/config.js';
import { VocabularyEmbeddings } from '../../src/search/vocabulary.js';

const [modelDir, dir] = process.argv.slice(2);
const model = await ClipModel.load(modelDir, {
  ...loadConfig({}),
  executionProviders: ['cpu'],
  intraOpThreads: 1,
});
const rows = await new VocabularyEmbeddings(model, { dir }).rows();
console.log(rows.source);
await model.release();
