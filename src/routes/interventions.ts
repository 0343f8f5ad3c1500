/**
 * POST /v1/interventions: edit neurons at the neuron layer of any image (set, scale, add to or zero,
 * at every grid position or one), run the attention-pool head, and compare the zero-shot answer
 * before and after; on one image, or on several (`images`, or the multipart file field repeated),
 * each edited alike. The blank-image check of POST /v1/attribution/verify is one case of it (an add at
 * every position on a white image, src/attribution/edits.ts).
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { MAX_BODY_BYTES } from '../limits.js';
import { badRequest } from '../errors.js';
import { DEFAULT_TEMPLATES, TYPOGRAPHIC_LIMITS } from '../typographic/service.js';
import { bodyTooLargeAdvice, imageBytes, multipartToBody } from './image-input.js';
import { ImageField, Text, Vector, withErrors } from './schemas.js';

const Edit = Type.Object(
  {
    neuron: Type.Integer({ minimum: 0, description: 'Neuron (channel) index, from 0 to the model’s last' }),
    op: Type.Union([Type.Literal('set'), Type.Literal('scale'), Type.Literal('add'), Type.Literal('zero')], {
      description: 'set: x = value; scale: x ·= value; add: x += value; zero: x = 0',
    }),
    value: Type.Optional(Type.Number({ description: 'Required for set, scale and add; not for zero' })),
    position: Type.Optional(
      Type.Object(
        {
          row: Type.Integer({ minimum: 0, description: 'Grid row, from the top' }),
          col: Type.Integer({ minimum: 0, description: 'Grid column, from the left' }),
        },
        { additionalProperties: false, description: 'One cell of the neuron grid; every cell when absent' },
      ),
    ),
  },
  { additionalProperties: false },
);

const InterventionBody = Type.Object(
  {
    image: Type.Optional(ImageField),
    images: Type.Optional(
      Type.Array(ImageField, {
        minItems: 1,
        description: `Several images as base64 (or the multipart file field "image" repeated), up to ${TYPOGRAPHIC_LIMITS.maxImages}, each edited alike; the answer lists them in images`,
      }),
    ),
    edits: Type.Array(Edit, {
      minItems: 1,
      maxItems: TYPOGRAPHIC_LIMITS.maxEdits,
      description: 'Applied in order to the neuron maps [C, h, w]',
    }),
    labels: Type.Array(Text, {
      minItems: 1,
      maxItems: TYPOGRAPHIC_LIMITS.maxLabels,
      description: 'The classes to classify among (zero-shot)',
    }),
    templates: Type.Optional(
      Type.Array(Type.String({ minLength: 2, maxLength: 500 }), {
        minItems: 1,
        maxItems: TYPOGRAPHIC_LIMITS.maxTemplates,
        description: `Prompt templates ({} is the label), averaged per label; default ${JSON.stringify(DEFAULT_TEMPLATES)}`,
      }),
    ),
    embedding: Type.Optional(
      Type.Boolean({
        default: true,
        description: 'Return the image embeddings after (and before) the edits',
      }),
    ),
  },
  { additionalProperties: false },
);

const ImageIntervention = Type.Object({
  embedding: Type.Optional({ ...Vector, description: 'The image embedding after the edits' }),
  embeddingBefore: Type.Optional({ ...Vector, description: 'The image embedding without them' }),
  labels: Type.Array(
    Type.Object({
      label: Type.String(),
      before: Type.Number({ description: 'Zero-shot probability before' }),
      after: Type.Number({ description: 'Zero-shot probability after' }),
      logitBefore: Type.Number(),
      logitAfter: Type.Number(),
      logitChange: Type.Number({ description: 'logitAfter − logitBefore' }),
    }),
  ),
  predictedBefore: Type.String(),
  predictedAfter: Type.String(),
});

const InterventionResponse = Type.Union([
  ImageIntervention,
  Type.Object(
    { images: Type.Array(ImageIntervention, { description: 'One per image, in the order sent' }) },
    { description: 'The answer to a request with images (several)' },
  ),
]);

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/v1/interventions',
    {
      bodyLimit: MAX_BODY_BYTES,
      preValidation: multipartToBody,
      errorHandler: bodyTooLargeAdvice(
        `send the images over several requests (up to ${TYPOGRAPHIC_LIMITS.maxImages} per request)`,
      ),
      schema: {
        tags: ['attribution'],
        operationId: 'intervene',
        summary: 'Edit neurons of an image at the neuron layer and see the zero-shot answer change',
        description:
          'Sets, scales, adds to or zeroes neurons of the image’s neuron maps (all grid positions, or one), runs the attention-pool head, and returns the new image embedding and, for each label, the zero-shot probability and logit before and after. With images (several; or the multipart file field "image" repeated), the same for each, listed in images.',
        body: InterventionBody,
        response: withErrors({ 200: InterventionResponse }, [400, 413, 415]),
      },
    },
    async (request) => {
      const { image, images, edits, labels, templates = DEFAULT_TEMPLATES, embedding = true } = request.body;
      if (image !== undefined && images !== undefined) {
        throw badRequest('send image (one) or images (several), not both');
      }
      const fields = images ?? (image !== undefined ? [image] : []);
      if (fields.length === 0) throw badRequest('send the image (image, or images for several)');
      const results = await app.typographic.intervene({
        images: fields.map((field) => imageBytes(request, field)),
        edits,
        labels,
        templates,
      });
      const answers = results.map((result) => ({
        ...result,
        embedding: embedding ? Array.from(result.embedding) : undefined,
        embeddingBefore: embedding ? Array.from(result.embeddingBefore) : undefined,
      }));
      return images !== undefined ? { images: answers } : answers[0];
    },
  );
};

export default routes;
