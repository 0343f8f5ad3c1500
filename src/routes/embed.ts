/**
 * POST /v1/embed/text and POST /v1/embed/image: the model's unnormalised embeddings, and for
 * images optionally the spatial mean of every neuron of the neuron layer.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { MAX_BODY_BYTES, TEXT_BODY_BYTES } from '../limits.js';
import { imageBytes, multipartToBody } from './image-input.js';
import { ImageField, Texts, Vector, withErrors } from './schemas.js';
import { JSON_TYPE, sendVectors, vectorFormat, vectorResponse } from './binary-vectors.js';

const EmbedTextBody = Type.Object({ texts: Texts }, { additionalProperties: false });
const EmbedTextResponse = Type.Object({
  embeddings: Type.Array(Vector, { description: 'text_embeds [D] per text, unnormalised' }),
});

const EmbedImageBody = Type.Object({ image: ImageField }, { additionalProperties: false });
const EmbedImageQuery = Type.Object(
  {
    neurons: Type.Optional(
      Type.Boolean({
        description:
          'Add the spatial mean of every neuron; in the binary forms, answer the neuron means [C] instead of the embedding',
      }),
    ),
  },
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
        description:
          'The unnormalised text embeddings [N, D], one row per text in order: JSON, or with Accept: application/x-npy (a NumPy .npy file) or application/octet-stream (little-endian float32 with X-Shape) a float32 matrix.',
        body: EmbedTextBody,
        response: {
          200: vectorResponse(EmbedTextResponse, 'the text embeddings [N, D]'),
          ...withErrors({}, [400, 406, 413, 415]),
        },
      },
    },
    async (request, reply) => {
      const format = vectorFormat(request, reply);
      const embeddings = await app.encoders.textEmbeddings(request.body.texts);
      if (format !== JSON_TYPE) return sendVectors(reply, format, embeddings, { columns: app.clip.embedDim });
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
        description:
          'The image embedding [D], and with neurons=true the spatial mean of every neuron [C]: JSON, or with Accept: application/x-npy or application/octet-stream one float32 vector, the embedding, or with neurons=true the neuron means.',
        querystring: EmbedImageQuery,
        body: EmbedImageBody,
        response: {
          200: vectorResponse(
            EmbedImageResponse,
            'the embedding [D], or with neurons=true the neuron means [C]',
          ),
          ...withErrors({}, [400, 406, 413, 415]),
        },
      },
    },
    async (request, reply) => {
      const format = vectorFormat(request, reply);
      const encoding = await app.encoders.imageEncoding(imageBytes(request, request.body.image));
      if (format !== JSON_TYPE) {
        const vector = request.query.neurons ? encoding.neuronMeans : encoding.embedding;
        const columns = request.query.neurons ? app.clip.neuronCount : app.clip.embedDim;
        return sendVectors(reply, format, [vector], { columns, vector: true });
      }
      return {
        embedding: Array.from(encoding.embedding),
        ...(request.query.neurons ? { neurons: Array.from(encoding.neuronMeans) } : {}),
      };
    },
  );
};

export default routes;
