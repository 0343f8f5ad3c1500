/**
 * One place that turns a loaded model and the settings into a WordService, for the plugin (the
 * server) and the CLI (`npm run index-words`), so both build and find the same index.
 */
import { readFile } from 'node:fs/promises';
import type { BinaryCache, CacheLogger } from '../cache/index.js';
import type { ClipModel } from '../clip/clip-model.js';
import { existsSync } from 'node:fs';
import { catalogueLexical } from '../attribution/lexical-neurons.js';
import { NeuronCatalogue } from '../attribution/neuron-catalogue.js';
import { MODEL_FILES, OPTIONAL_FILES } from '../clip/model-directory.js';
import { modelRenderer } from './render.js';
import { RenderPool } from './render-pool.js';
import { WordService } from './service.js';
import type { WordSettings } from './settings.js';
import { parseWordList, resolveVocabulary } from './vocabulary.js';

export interface WordServiceSetup {
  model: ClipModel;
  dataDir: string;
  settings: WordSettings;
  cache?: BinaryCache;
  log?: CacheLogger;
}

/** The vocabulary is WORD_VOCAB_FILE if set, else the model's words.txt, else the default list. */
export async function createWordService(setup: WordServiceSetup): Promise<WordService> {
  const { model, settings } = setup;
  const file = settings.vocabularyFile;
  const vocabulary = await resolveVocabulary({
    words: file ? parseWordList(await readFile(file, 'utf8')) : undefined,
    wordsFile: model.directory.path(OPTIONAL_FILES.vocabulary),
    size: settings.vocabularySize,
  });
  const { image_size: imageSize, mean, std } = model.directory.manifest;
  const threads = settings.renderThreads;
  const renderPool = () => {
    const pool = new RenderPool({ imageSize, mean, std }, threads);
    return { render: (words: readonly string[]) => pool.render(words), close: () => pool.close() };
  };
  // The catalogue's lexical family joins the detector's flags in mask=lexical (lexical-neurons.ts).
  const catalogueFile = model.directory.path(MODEL_FILES.neuronCatalogue);
  const catalogue = existsSync(catalogueFile)
    ? await NeuronCatalogue.load(catalogueFile, model.neuronCount)
    : NeuronCatalogue.empty(model.neuronCount);
  return new WordService({
    model,
    catalogueLexical: catalogueLexical(catalogue),
    vocabulary,
    render: modelRenderer(model),
    renderPool: threads > 0 ? renderPool : undefined,
    dataDir: setup.dataDir,
    settings,
    cache: setup.cache,
    log: setup.log,
  });
}
