/**
 * GET /v1/neurons/{id}: a neuron's entry in the model's catalogue (neurons.json).
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { badRequest, notFound } from '../errors.js';
import { NeuronIdParams, withErrors } from './schemas.js';

const Neuron = Type.Object({
  id: Type.Integer(),
  label: Type.Optional(Type.String()),
  family: Type.Optional(Type.String()),
  source: Type.Optional(Type.String()),
  score: Type.Optional(Type.Number()),
  topWords: Type.Optional(
    Type.Array(Type.String(), { description: 'Words that activate it most when rastered' }),
  ),
  handLabel: Type.Optional(
    Type.String({ description: 'A hand label, where the label comes from elsewhere' }),
  ),
  credit: Type.Optional(Type.String({ description: 'Attribution the data’s licence asks for' })),
});

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/neurons/:id',
    {
      schema: {
        tags: ['neurons'],
        summary: 'A neuron from the catalogue',
        params: NeuronIdParams,
        response: withErrors({ 200: Neuron }, [400, 404]),
      },
    },
    async (request) => {
      const id = Number(request.params.id);
      const count = app.clip.neuronCount;
      if (id >= count) throw badRequest(`neuron ${id} is out of range (0 to ${count - 1})`);
      const entry = app.attribution.catalogue.get(id);
      if (entry === undefined) throw notFound(`neuron ${id} has no entry in this model's catalogue`);
      return entry;
    },
  );
};

export default routes;
