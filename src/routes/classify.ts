/**
 * POST /v1/classify: zero-shot classification, CLIP's softmax over
 * logit_scale · cos(image, template(label)), in the order the labels were given.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { MAX_BODY_BYTES } from '../limits.js';
import { badRequest } from '../errors.js';
import { zeroShotProbabilities } from '../clip/zero-shot.js';
import { imageBytes, multipartToBody } from './image-input.js';
import { ImageField, MAX_TEXTS, Text, withErrors } from './schemas.js';

const ClassifyBody = Type.Object(
  {
    image: ImageField,
    labels: Type.Array(Text, { minItems: 1, maxItems: MAX_TEXTS, description: 'Candidate labels' }),
    template: Type.Optional(
      Type.String({
        minLength: 2,
        maxLength: 500,
        default: 'a photo of {}',
        description: 'Prompt template; {} is replaced by each label',
      }),
    ),
  },
  { additionalProperties: false },
);

const ClassifyResponse = Type.Object({
  probabilities: Type.Array(Type.Object({ label: Type.String(), p: Type.Number() })),
});

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/v1/classify',
    {
      bodyLimit: MAX_BODY_BYTES,
      preValidation: multipartToBody,
      schema: {
        tags: ['clip'],
        summary: 'Zero-shot classification of an image over labels',
        body: ClassifyBody,
        response: withErrors({ 200: ClassifyResponse }, [400, 413, 415]),
      },
    },
    async (request) => {
      const { labels, template = 'a photo of {}' } = request.body;
      if (!template.includes('{}')) throw badRequest('template must contain {} where the label goes');
      const bytes = imageBytes(request, request.body.image);
      const [image, texts] = await Promise.all([
        app.encoders.imageEncoding(bytes),
        app.encoders.textEmbeddings(labels.map((label) => template.replaceAll('{}', label))),
      ]);
      const p = zeroShotProbabilities(image.embedding, texts, app.clip.logitScale);
      return { probabilities: labels.map((label, i) => ({ label, p: p[i] })) };
    },
  );
};

export default routes;
