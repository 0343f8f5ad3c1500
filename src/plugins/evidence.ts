/**
 * app.evidence: the three sides of every neuron (seeing, reading, speaking for), the multimodality
 * measure and automatic labels (src/evidence/), on the model's catalogue, word index and collections.
 * Nothing is computed at start: the text-side index and a collection's view are built on first use
 * and kept.
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { EvidenceService } from '../evidence/service.js';

declare module 'fastify' {
  interface FastifyInstance {
    evidence: EvidenceService;
  }
}

const evidencePlugin: FastifyPluginAsync = async (app) => {
  app.decorate(
    'evidence',
    new EvidenceService({
      model: app.clip,
      catalogue: app.attribution.catalogue,
      words: app.words,
      collections: app.collections,
      attribution: (text, templates) => app.attribution.textVector(text, 'unit', templates),
      embeddings: (prompts) => app.encoders.textEmbeddings(prompts),
    }),
  );
};

export default fp(evidencePlugin, {
  name: 'evidence',
  dependencies: ['model', 'attribution', 'words', 'collections'],
});
