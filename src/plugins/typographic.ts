/**
 * app.typographic: typographic attacks, their explanation and defence, Stroop stimuli and
 * interventions at the neuron layer (src/typographic/), on the loaded model. The lexical set is the
 * service's one (the catalogue's and the word index's detected neurons; a small vocabulary's index
 * built at start is awaited, as for the emotion fits). Large attacks run as jobs of kind
 * `typographic-attack` on app.jobs.
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { attackProcessor } from '../typographic/job.js';
import { TypographicService } from '../typographic/service.js';

declare module 'fastify' {
  interface FastifyInstance {
    typographic: TypographicService;
  }
}

const typographicPlugin: FastifyPluginAsync = async (app) => {
  const service = new TypographicService(app.clip, app.encoders, app.attribution, () =>
    app.words.lexicalSet(undefined, { waitForBuild: true }),
  );
  app.decorate('typographic', service);
  // Attacks above one request's images are jobs (src/typographic/job.ts); src/bin/worker.ts runs them too.
  // Those on a collection's images read its originals when they run (app.collections, registered next).
  const readImage = (collection: string, sha256: string) => {
    if (!app.hasDecorator('collections')) throw new Error('this service has no collections');
    return app.collections.store.readImage(collection, sha256);
  };
  app.jobs.registry.register('typographic-attack', attackProcessor(service, readImage));
};

export default fp(typographicPlugin, {
  name: 'typographic',
  dependencies: ['model', 'attribution', 'words', 'jobs'],
});
