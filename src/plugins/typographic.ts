/**
 * app.typographic: typographic attacks, their explanation and defence, Stroop stimuli and
 * interventions at the neuron layer (src/typographic/), on the loaded model. The lexical set is the
 * service's one (the catalogue's and the word index's detected neurons; a small vocabulary's index
 * built at start is awaited, as for the emotion fits).
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { TypographicService } from '../typographic/service.js';

declare module 'fastify' {
  interface FastifyInstance {
    typographic: TypographicService;
  }
}

const typographicPlugin: FastifyPluginAsync = async (app) => {
  app.decorate(
    'typographic',
    new TypographicService(app.clip, app.encoders, app.attribution, () =>
      app.words.lexicalSet(undefined, { waitForBuild: true }),
    ),
  );
};

export default fp(typographicPlugin, {
  name: 'typographic',
  dependencies: ['model', 'attribution', 'words'],
});
