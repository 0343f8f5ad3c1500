/**
 * GET /v1/neurons/{id}/neighbours: a neuron's cosine neighbours, by its row of W (the texts it
 * speaks for) or by its activation pattern over a collection's images (Pearson's r).
 * src/evidence/neighbours.ts has the arithmetic; docs/neuron-evidence.md defines both.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { COLLECTION_ID_PATTERN } from '../collections/store.js';
import { NeuronIdParams, withErrors } from './schemas.js';
import { withAllowed } from './validation.js';

const NeighboursQuery = Type.Object(
  {
    by: Type.Optional(
      Type.Union([Type.Literal('weights'), Type.Literal('activations')], {
        default: 'weights',
        description:
          'weights: cosine between rows of W (attribution directions in text-embedding space); activations: cosine between centred activation columns over a collection’s images (Pearson’s r)',
      }),
    ),
    collection: withAllowed(
      Type.Optional(
        Type.String({
          pattern: COLLECTION_ID_PATTERN,
          maxLength: 64,
          description:
            'For by=activations: a collection id; by default the model’s probe collection ("probe") when there is one. Not used by weights',
        }),
      ),
      'collection must be a collection id: 1 to 64 lower-case letters, digits and inner hyphens',
    ),
    k: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'Neighbours' })),
  },
  { additionalProperties: false },
);

const NeighboursResponse = Type.Object({
  neuron: Type.Integer(),
  by: Type.Union([Type.Literal('weights'), Type.Literal('activations')]),
  collection: Type.Union([Type.String(), Type.Null()], { description: 'The collection (activations)' }),
  images: Type.Union([Type.Integer(), Type.Null()], { description: 'Its indexed images (activations)' }),
  neighbours: Type.Array(
    Type.Object({
      neuron: Type.Integer(),
      cosine: Type.Number({
        description: 'Cosine of the W rows, or of the centred activation columns (Pearson’s r)',
      }),
      label: Type.Union([Type.String(), Type.Null()], { description: 'Its catalogue label' }),
      family: Type.Union([Type.String(), Type.Null()]),
    }),
    { description: 'Highest cosine first, the neuron itself left out (and neurons with no direction)' },
  ),
});

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/neurons/:id/neighbours',
    {
      schema: {
        tags: ['neurons'],
        summary: 'A neuron’s cosine neighbours, by its row of W or by its activations over a collection',
        description:
          'by=weights: the neurons whose rows of the bilinear W (their attribution directions W·t in text-embedding space) are closest in cosine. by=activations: the neurons whose activations over a collection’s images (spatial means) are most correlated: the cosine of the centred columns. A neuron with no direction (a zero row, a constant column) is a 409.',
        params: NeuronIdParams,
        querystring: NeighboursQuery,
        response: withErrors({ 200: NeighboursResponse }, [400, 404, 409]),
      },
    },
    async (request) => {
      const { by = 'weights', k = 10, collection } = request.query;
      return app.neighbours.neighbours(Number(request.params.id), { by, k, collection });
    },
  );
};

export default routes;
