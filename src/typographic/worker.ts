/**
 * The `typographic-attack` processor of a worker process (src/bin/worker.ts), which has no app:
 * the encoders and the attribution service built on its model and cache. The lexical set comes with
 * each job (the server that took it resolved it), so the worker needs no word index. Attacks on a
 * collection's images read the originals from the collection store (DATA_DIR, shared with the servers).
 */
import type { BinaryCache } from '../cache/index.js';
import type { CollectionStore } from '../collections/store.js';
import type { ClipModel } from '../clip/clip-model.js';
import type { Config } from '../config.js';
import { attributionForWorker } from '../jobs/worker-services.js';
import { attackProcessor } from './job.js';
import { TypographicService } from './service.js';

export async function typographicForWorker(
  model: ClipModel,
  cache: BinaryCache,
  config: Pick<Config, 'maxImagePixels' | 'imageDecodeConcurrency'>,
  store?: CollectionStore,
) {
  const { encoders, attribution } = await attributionForWorker(model, cache, config);
  const service = new TypographicService(model, encoders, attribution, () =>
    Promise.reject(new Error('a typographic-attack job carries its lexical set; this one has none')),
  );
  return attackProcessor(service, store && ((collection, sha256) => store.readImage(collection, sha256)));
}
