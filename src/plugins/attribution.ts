/**
 * app.attribution: text → neuron attribution, image contributions and the intervention check,
 * with the model directory's neuron catalogue.
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { existsSync } from 'node:fs';
import { AttributionService } from '../attribution/service.js';
import { NeuronCatalogue } from '../attribution/neuron-catalogue.js';
import { MODEL_FILES } from '../clip/model-directory.js';

declare module 'fastify' {
  interface FastifyInstance {
    attribution: AttributionService;
  }
}

const attributionPlugin: FastifyPluginAsync = async (app) => {
  const model = app.clip;
  const file = model.directory.path(MODEL_FILES.neuronCatalogue);
  const catalogue = existsSync(file)
    ? await NeuronCatalogue.load(file, model.neuronCount)
    : NeuronCatalogue.empty(model.neuronCount);
  app.decorate('attribution', new AttributionService(model, catalogue, app.encoders, app.cache));
};

export default fp(attributionPlugin, { name: 'attribution', dependencies: ['model', 'cache'] });
