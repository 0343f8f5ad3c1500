/**
 * app.evidence: the three sides of every neuron (seeing, reading, speaking for), the multimodality
 * measure and automatic labels (src/evidence/), on the model's catalogue, word index and collections;
 * app.neighbours: a neuron's cosine neighbours by its row of W and by its activations over a
 * collection (src/evidence/neighbour-service.ts). Nothing is computed at start: the text-side index,
 * a collection's view and its activation moments are built on first use and kept (the index's word
 * rows also in DATA_DIR/text-index, shared with the workers: src/evidence/shared-text-rows.ts).
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import path from 'node:path';
import type { Config } from '../config.js';
import { NeighbourService } from '../evidence/neighbour-service.js';
import { EvidenceService } from '../evidence/service.js';

declare module 'fastify' {
  interface FastifyInstance {
    evidence: EvidenceService;
    neighbours: NeighbourService;
  }
}

const evidencePlugin: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  app.decorate(
    'evidence',
    new EvidenceService({
      model: app.clip,
      catalogue: app.attribution.catalogue,
      words: app.words,
      collections: app.collections,
      attribution: (text, templates) => app.attribution.textVector(text, 'unit', templates),
      embeddings: (prompts) => app.encoders.textEmbeddings(prompts),
      sharedTextDir: path.join(config.dataDir, 'text-index'),
      warn: (message) => app.log.warn(message),
    }),
  );
  const neighbours = new NeighbourService({
    model: app.clip,
    catalogue: app.attribution.catalogue,
    collections: app.collections,
  });
  app.decorate('neighbours', neighbours);
  app.addHook('onClose', () => neighbours.close());
};

export default fp(evidencePlugin, {
  name: 'evidence',
  dependencies: ['model', 'attribution', 'words', 'collections'],
});
