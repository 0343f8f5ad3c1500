/**
 * The services that job processors of a worker process (src/bin/worker.ts, which has no app) build
 * on its model and cache, as the plugins build the app's: the encoders (under the decode bound of
 * the config) and the attribution service on the model's published neuron catalogue (an empty one
 * where the model directory has none). Each kind that needs them builds its own.
 */
import { existsSync } from 'node:fs';
import { NeuronCatalogue } from '../attribution/neuron-catalogue.js';
import { AttributionService } from '../attribution/service.js';
import type { BinaryCache } from '../cache/index.js';
import type { ClipModel } from '../clip/clip-model.js';
import { Encoders } from '../clip/encoders.js';
import { MODEL_FILES } from '../clip/model-directory.js';
import type { Config } from '../config.js';

export interface WorkerAttribution {
  encoders: Encoders;
  /** The model's published neuron catalogue (empty without one). */
  catalogue: NeuronCatalogue;
  attribution: AttributionService;
}

export async function attributionForWorker(
  model: ClipModel,
  cache: BinaryCache,
  config: Pick<Config, 'maxImagePixels' | 'imageDecodeConcurrency'>,
): Promise<WorkerAttribution> {
  const encoders = new Encoders(model, cache, {
    maxPixels: config.maxImagePixels,
    concurrency: config.imageDecodeConcurrency,
  });
  const file = model.directory.path(MODEL_FILES.neuronCatalogue);
  const catalogue = existsSync(file)
    ? await NeuronCatalogue.load(file, model.neuronCount)
    : NeuronCatalogue.empty(model.neuronCount);
  return { encoders, catalogue, attribution: new AttributionService(model, catalogue, encoders, cache) };
}
