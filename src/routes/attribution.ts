/**
 * Text → neuron attribution (a = W·t), an image's per-neuron contributions to a text, and the
 * intervention check on a blank image. See src/attribution/bilinear.ts for the math.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { topAndBottom, type RankedNeuron } from '../attribution/bilinear.js';
import { badRequest } from '../errors.js';
import { MAX_BODY_BYTES, TEXT_BODY_BYTES } from '../limits.js';
import { imageBytes, multipartToBody } from './image-input.js';
import { ImageField, Text, Texts, Vector, withErrors } from './schemas.js';
import { JSON_TYPE, sendVectors, vectorFormat, vectorResponse } from './binary-vectors.js';

const MAX_TOP_K = 1000;

const TopK = Type.Integer({ minimum: 1, maximum: MAX_TOP_K, default: 10, description: 'Neurons per list' });

const Template = Type.String({
  minLength: 2,
  maxLength: 500,
  pattern: '\\{\\}',
  description: 'A prompt template; {} stands for the text',
});

const Ranked = Type.Object({
  neuron: Type.Integer(),
  value: Type.Number(),
  share: Type.Number({ description: 'value / Σ|values|' }),
  label: Type.Optional(Type.String()),
});

const TextAttributionBody = Type.Object(
  {
    texts: Texts,
    topK: Type.Optional(TopK),
    normalize: Type.Optional(
      Type.Union([Type.Literal('unit'), Type.Literal('none')], {
        default: 'unit',
        description: '"unit": W·t/|t| as in the logit; "none": W·t',
      }),
    ),
    full: Type.Optional(Type.Boolean({ default: false, description: 'Return the whole vector' })),
    templates: Type.Optional(
      Type.Array(Template, { minItems: 1, maxItems: 16, description: 'Average the vector over templates' }),
    ),
  },
  { additionalProperties: false },
);

const TextAttributionResponse = Type.Object({
  results: Type.Array(
    Type.Object({
      text: Type.String(),
      top: Type.Array(Ranked),
      bottom: Type.Array(Ranked),
      vector: Type.Optional(Vector),
    }),
  ),
});

const ImageAttributionBody = Type.Object(
  { image: ImageField, text: Text, topK: Type.Optional(TopK) },
  { additionalProperties: false },
);

const ImageRanked = Type.Object({
  neuron: Type.Integer(),
  value: Type.Number({ description: 'x_i·a_i, before normalisation (a = W·t/|t|)' }),
  logit: Type.Number({
    description:
      'The same in logit units: logit_scale · x_i·a_i / |image embedding| (these sum to bilinearLogit)',
  }),
  share: Type.Number({ description: 'value / Σ|values|' }),
  label: Type.Optional(Type.String()),
});

const ImageAttributionResponse = Type.Object(
  {
    text: Type.String(),
    top: Type.Array(ImageRanked, { description: 'Largest contributions x_i·a_i' }),
    bottom: Type.Array(ImageRanked, { description: 'Most negative contributions' }),
    sum: Type.Number({
      description: 'Σ x_i·a_i over all neurons: the bilinear part of the logit before normalisation',
    }),
    imageNorm: Type.Number({ description: '|image embedding|, which the logit divides by' }),
    logitScale: Type.Number({ description: 'The model’s logit scale: logit = logit_scale · cosine' }),
    bilinearLogit: Type.Number({
      description:
        'The bilinear part after normalisation, in logit units: logit_scale · Σ x_i·a_i / |image embedding|',
    }),
    biasLogit: Type.Number({
      description:
        'The attention-pool head’s bias and positional terms, in logit units: logit_scale · head(0)·t/|t| / |image embedding|',
    }),
    residual: Type.Number({
      description:
        'logit − bilinearLogit − biasLogit: the head’s dependence on the image beyond Wᵀx (its attention weights); 0 to rounding where attention is uniform',
    }),
    logit: Type.Number({
      description:
        'The model’s exact logit: logit_scale · cos(image, text) = bilinearLogit + biasLogit + residual',
    }),
  },
  {
    description:
      'logit = logit_scale · (Σ x_i·a_i + head(0)·t/|t| + the rest) / |image embedding|, each term in logit units',
  },
);

const VerifyBody = Type.Object(
  {
    text: Text,
    neurons: Type.Optional(
      Type.Array(Type.Integer({ minimum: 0 }), {
        minItems: 1,
        maxItems: 64,
        description: 'Default: top neurons',
      }),
    ),
    topK: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, default: 10 })),
    delta: Type.Optional(
      Type.Number({
        minimum: -1e4,
        maximum: 1e4,
        description:
          'Added to the neuron at every grid position; default: the blank image’s largest activation',
      }),
    ),
  },
  { additionalProperties: false },
);

const VerifyResponse = Type.Object({
  text: Type.String(),
  delta: Type.Number(),
  before: Type.Number({ description: 'The text’s logit for the blank image' }),
  neurons: Type.Array(
    Type.Object({
      neuron: Type.Integer(),
      label: Type.Optional(Type.String()),
      attribution: Type.Number(),
      after: Type.Number(),
      rose: Type.Boolean(),
    }),
  ),
  rose: Type.Integer({ description: 'For how many of the neurons the logit rose' }),
  total: Type.Integer(),
});

const routes: FastifyPluginAsyncTypebox = async (app) => {
  /** Adds each neuron's catalogue label, when it has one (undefined labels are not serialised). */
  const labelled = <Row extends { neuron: number }>(rows: Row[]) =>
    rows.map((row) => ({ ...row, label: app.attribution.catalogue.label(row.neuron) }));
  /** The same for ranked neurons, built field by field: the hot path of cached requests. */
  const labelledRanks = (rows: RankedNeuron[]) =>
    rows.map(({ neuron, value, share }) => ({
      neuron,
      value,
      share,
      label: app.attribution.catalogue.label(neuron),
    }));

  app.post(
    '/v1/attribution/text',
    {
      bodyLimit: TEXT_BODY_BYTES,
      schema: {
        tags: ['attribution'],
        summary: 'The neurons that carry each text (W·t)',
        description:
          'Each text’s attribution vector a = W·t (by default divided by |t|) and its top and bottom neurons. With Accept: application/x-npy (a NumPy .npy file) or application/octet-stream (little-endian float32 with X-Shape) the answer is the vectors alone, a float32 matrix [N, C] with one row per text in order (topK and full apply to JSON only).',
        body: TextAttributionBody,
        response: {
          200: vectorResponse(TextAttributionResponse, 'the attribution vectors [N, C]'),
          ...withErrors({}, [400, 406, 413, 415]),
        },
      },
    },
    async (request, reply) => {
      const format = vectorFormat(request, reply);
      const { texts, topK = 10, normalize = 'unit', full = false, templates } = request.body;
      if (format !== JSON_TYPE) {
        const vectors = await Promise.all(
          texts.map((text) => app.attribution.textVector(text, normalize, templates)),
        );
        return sendVectors(reply, format, vectors, { columns: app.clip.neuronCount });
      }
      const ranked = await Promise.all(
        texts.map((text) => app.attribution.textRanks(text, normalize, topK, templates)),
      );
      return {
        results: texts.map((text, i) => {
          const { vector, top, bottom } = ranked[i];
          return {
            text,
            top: labelledRanks(top),
            bottom: labelledRanks(bottom),
            vector: full ? Array.from(vector) : undefined, // undefined is not serialised
          };
        }),
      };
    },
  );

  app.post(
    '/v1/attribution/image',
    {
      bodyLimit: MAX_BODY_BYTES,
      preValidation: multipartToBody,
      schema: {
        tags: ['attribution'],
        summary: 'Per-neuron contributions x_i·a_i of an image to a text, and the exact logit',
        body: ImageAttributionBody,
        response: withErrors({ 200: ImageAttributionResponse }, [400, 413, 415]),
      },
    },
    async (request) => {
      const { text, topK = 10 } = request.body;
      const result = await app.attribution.imageAttribution(imageBytes(request, request.body.image), text);
      const { top, bottom } = topAndBottom(result.contributions, topK);
      const toLogit = result.logitScale / result.imageNorm;
      const inLogits = (rows: RankedNeuron[]) =>
        labelledRanks(rows).map((row) => ({ ...row, logit: row.value * toLogit }));
      return {
        text,
        top: inLogits(top),
        bottom: inLogits(bottom),
        sum: result.sum,
        imageNorm: result.imageNorm,
        logitScale: result.logitScale,
        bilinearLogit: result.bilinearLogit,
        biasLogit: result.biasLogit,
        residual: result.residual,
        logit: result.logit,
      };
    },
  );

  app.post(
    '/v1/attribution/verify',
    {
      schema: {
        tags: ['attribution'],
        summary: 'Intervention check: does adding to a neuron on a blank image raise the text’s logit?',
        body: VerifyBody,
        response: withErrors({ 200: VerifyResponse }, [400, 413, 415]),
      },
    },
    async (request) => {
      const { text, topK = 10, delta } = request.body;
      const count = app.clip.neuronCount;
      const outOfRange = request.body.neurons?.find((neuron) => neuron >= count);
      if (outOfRange !== undefined)
        throw badRequest(`neuron ${outOfRange} is out of range (0 to ${count - 1})`);
      const neurons =
        request.body.neurons ??
        topAndBottom(await app.attribution.textVector(text, 'unit'), topK).top.map((entry) => entry.neuron);
      const result = await app.attribution.intervention(text, neurons, delta);
      const rows = labelled(result.neurons);
      return {
        text,
        delta: result.delta,
        before: result.before,
        neurons: rows,
        rose: rows.filter((row) => row.rose).length,
        total: rows.length,
      };
    },
  );
};

export default routes;
