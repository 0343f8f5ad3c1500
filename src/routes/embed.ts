/**
 * POST /v1/embed/text and POST /v1/embed/image: the model's unnormalised embeddings, and for
 * images optionally the spatial mean of every neuron of the neuron layer.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { MAX_BODY_BYTES, TEXT_BODY_BYTES } from '../limits.js';
import { imageBytes, multipartToBody } from './image-input.js';
import { ImageField, Texts, Vector, withErrors } from './schemas.js';

const EmbedTextBody = Type.Object({ texts: Texts }, { additionalProperties: false });
const EmbedTextResponse = Type.Object({
  embeddings: Type.Array(Vector, { description: 'text_embeds [D] per text, unnormalised' }),
});

const EmbedImageBody = Type.Object({ image: ImageField }, { additionalProperties: false });
const EmbedImageQuery = Type.Object(
  { neurons: Type.Optional(Type.Boolean({ description: 'Add the spatial mean of every neuron' })) },
  { additionalProperties: false },
);
const EmbedImageResponse = Type.Object({
  embedding: Vector,
  neurons: Type.Optional(Type.Array(Type.Number(), { description: 'Spatial mean per neuron [C]' })),
});

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/v1/embed/text',
    {
      bodyLimit: TEXT_BODY_BYTES,
      schema: {
        tags: ['clip'],
        summary: 'Text embeddings',
        body: EmbedTextBody,
        response: withErrors({ 200: EmbedTextResponse }, [400, 413, 415]),
      },
    },
    async (request) => {
      const embeddings = await app.encoders.textEmbeddings(request.body.texts);
      return { embeddings: embeddings.map((vector) => Array.from(vector)) };
    },
  );

  app.post(
    '/v1/embed/image',
    {
      bodyLimit: MAX_BODY_BYTES,
      preValidation: multipartToBody,
      schema: {
        tags: ['clip'],
        summary: 'Image embedding (JSON base64 or multipart field "image")',
        querystring: EmbedImageQuery,
        body: EmbedImageBody,
        response: withErrors({ 200: EmbedImageResponse }, [400, 413, 415]),
      },
    },
    async (request) => {
      const encoding = await app.encoders.imageEncoding(imageBytes(request, request.body.image));
      return {
        embedding: Array.from(encoding.embedding),
        ...(request.query.neurons ? { neurons: Array.from(encoding.neuronMeans) } : {}),
      };
    },
  );
};

export default routes;
