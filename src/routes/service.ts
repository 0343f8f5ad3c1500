/**
 * GET /health and GET /v1/model: what is loaded, where it runs, and whether the cache answers.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  model: Type.Object({ name: Type.String(), sha256: Type.String() }),
  executionProvider: Type.String(),
  cache: Type.Object({ backend: Type.String(), ok: Type.Boolean() }),
});

const ModelInfo = Type.Object({
  name: Type.String(),
  sha256: Type.String(),
  neuronCount: Type.Integer({ description: 'Channels of the neuron layer (the attention-pool input)' }),
  neuronLayer: Type.String(),
  neuronGrid: Type.Array(Type.Integer(), { description: '[h, w] of the neuron layer' }),
  embedDim: Type.Integer(),
  imageSize: Type.Integer(),
  contextLength: Type.Integer(),
  vocabSize: Type.Integer(),
  logitScale: Type.Number(),
  executionProvider: Type.String(),
});

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/health',
    { schema: { tags: ['service'], summary: 'Liveness and readiness', response: { 200: Health } } },
    async () => {
      const cache = app.cache.status();
      return {
        status: cache.ok ? ('ok' as const) : ('degraded' as const),
        model: { name: app.clip.name, sha256: app.clip.sha256 },
        executionProvider: app.clip.executionProvider,
        cache,
      };
    },
  );

  app.get(
    '/v1/model',
    { schema: { tags: ['service'], summary: 'The loaded model', response: { 200: ModelInfo } } },
    async () => {
      const { manifest } = app.clip.directory;
      return {
        name: manifest.name,
        sha256: app.clip.sha256,
        neuronCount: manifest.neuron_count,
        neuronLayer: manifest.neuron_layer,
        neuronGrid: manifest.neuron_grid,
        embedDim: manifest.embed_dim,
        imageSize: manifest.image_size,
        contextLength: manifest.context_length,
        vocabSize: manifest.vocab_size,
        logitScale: manifest.logit_scale,
        executionProvider: app.clip.executionProvider,
      };
    },
  );
};

export default routes;
