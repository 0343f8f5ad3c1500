/**
 * The `neuron-labels` and `neuron-labels-shard` processors of a worker process (src/bin/worker.ts),
 * which has no app: the services the labelling reads (the word index, loaded from DATA_DIR or the
 * shared cache and never built here; the collections under DATA_DIR; attribution and encoders on
 * the worker's model and cache) built as the plugins build them. The automatic catalogue it writes is
 * the servers' (the same DATA_DIR); cached maximal texts come from the shared cache.
 */
import path from 'node:path';
import type { BinaryCache } from '../cache/index.js';
import type { ClipModel } from '../clip/clip-model.js';
import { boundedDecode } from '../clip/encoders.js';
import { Semaphore } from '../clip/semaphore.js';
import { CollectionService } from '../collections/service.js';
import { loadCollectionSettings } from '../collections/settings.js';
import { CollectionStore } from '../collections/store.js';
import type { Config } from '../config.js';
import { bestKey, type BestSearch } from '../jobs/processor.js';
import { attributionForWorker } from '../jobs/worker-services.js';
import { loadWordSettings } from '../words/settings.js';
import { createWordService } from '../words/setup.js';
import { LabelCatalogue } from './catalogue.js';
import { labelShardSizeOf, NeuronLabelJobs } from './label-job.js';
import { EvidenceService } from './service.js';

export async function labelsForWorker(
  model: ClipModel,
  cache: BinaryCache,
  config: Pick<Config, 'dataDir' | 'maxImagePixels' | 'imageDecodeConcurrency'>,
  log: {
    info(o: object | string, m?: string): void;
    warn(o: object | string, m?: string): void;
    error(o: object | string, m?: string): void;
  },
): Promise<{ jobs: NeuronLabelJobs; close(): Promise<void> }> {
  const { encoders, catalogue: published, attribution } = await attributionForWorker(model, cache, config);
  const words = await createWordService({
    model,
    dataDir: config.dataDir,
    settings: { ...loadWordSettings(), autoBuild: 'false' },
    cache,
    log: log as never,
  });
  await words.load();
  const { manifest } = model.directory;
  const spec = { imageSize: manifest.image_size, mean: manifest.mean, std: manifest.std };
  const collections = new CollectionService(
    new CollectionStore(config.dataDir),
    model,
    spec,
    boundedDecode(new Semaphore(config.imageDecodeConcurrency), config.maxImagePixels),
    loadCollectionSettings(),
    log as never,
  );
  const evidence = new EvidenceService({
    model,
    catalogue: published,
    words,
    collections,
    attribution: (text, templates) => attribution.textVector(text, 'unit', templates),
    embeddings: (prompts) => encoders.textEmbeddings(prompts),
    sharedTextDir: path.join(config.dataDir, 'text-index'),
    warn: (message) => log.warn(message),
  });
  const jobs = new NeuronLabelJobs({
    evidence,
    collections,
    words,
    catalogue: new LabelCatalogue(config.dataDir, model, published),
    model,
    maxText: async (neuron) => {
      const best = await cache.getJson<BestSearch>(bestKey(model.sha256, neuron)).catch(() => undefined);
      return best ? { text: best.result.text, score: best.result.score, steps: best.result.steps } : null;
    },
    shardSize: labelShardSizeOf(),
  });
  return {
    jobs,
    close: async () => {
      await jobs.stop();
      await collections.stop();
      await words.stop();
      await words.close();
    },
  };
}
