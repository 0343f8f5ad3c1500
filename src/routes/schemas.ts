/**
 * Request and response pieces shared by several routes. Each route's full schema sits beside it;
 * these TypeBox schemas validate requests, type the handlers and generate openapi/openapi.json.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { withAllowed } from './validation.js';

/** What a neuron id in a path may be; {neuronMax} is the loaded model's last neuron. */
export const NEURON_ID_ALLOWED = 'neuron id must be an integer from 0 to {neuronMax}';

export const MAX_TEXTS = 256;
export const MAX_TEXT_CHARS = 2000;

export const Text = Type.String({ minLength: 1, maxLength: MAX_TEXT_CHARS, description: 'A prompt' });

export const Texts = Type.Array(Text, {
  minItems: 1,
  maxItems: MAX_TEXTS,
  description: `1 to ${MAX_TEXTS} texts of 1 to ${MAX_TEXT_CHARS} characters`,
});

export const Vector = Type.Array(Type.Number());

/** An image as base64 (a data: URL prefix is accepted); multipart uploads use the field `image`. */
export const ImageField = Type.String({
  minLength: 1,
  description: 'PNG, JPEG, WebP or GIF bytes, base64-encoded (at most 10 MiB decoded)',
});

export const ErrorResponse = Type.Object(
  {
    statusCode: Type.Integer(),
    error: Type.String(),
    message: Type.String(),
  },
  { $id: 'ErrorResponse', description: 'An error; 4xx messages say what was wrong with the request' },
);

/** The error responses every route may give, for the OpenAPI document. */
export function withErrors<T extends Record<number, TSchema>>(responses: T, statuses: number[] = [400]) {
  const errors = Object.fromEntries(statuses.map((status) => [status, ErrorResponse]));
  return { ...responses, ...errors, 500: ErrorResponse };
}

/**
 * A neuron id in a path. A string of digits, not an integer schema: query/param conversion would
 * otherwise turn "1.5" into 1. Routes check the upper bound (the model's neuron count).
 */
export const NeuronIdParams = Type.Object({
  id: withAllowed(
    Type.String({ pattern: '^[0-9]{1,9}$', description: 'Neuron (channel) index, an integer from 0' }),
    NEURON_ID_ALLOWED,
  ),
});

const LexicalSourceSchema = Type.Union([Type.Literal('catalogue'), Type.Literal('detected')]);

/** Which lexical neurons a response masked, and from which sources (src/attribution/lexical-neurons.ts). */
export const LexicalUseSchema = Type.Object({
  sources: Type.Array(LexicalSourceSchema, {
    description:
      'catalogue: the model catalogue’s lexical family (for RN50-x4 the article’s published ids); detected: the word index’s detector',
  }),
  neurons: Type.Integer({ description: 'Neurons in the set (the union of the sources)' }),
  catalogue: Type.Integer({ description: 'Neurons from the catalogue' }),
  detected: Type.Integer({ description: 'Neurons the detector flags' }),
  threshold: Type.Optional(Type.Number({ description: 'The detector’s threshold' })),
  detectedUnavailable: Type.Optional(
    Type.String({ description: 'Why the detected source was not used (no word index yet, …)' }),
  ),
});

/** One neuron of the lexical set. */
export const LexicalNeuronSchema = Type.Object({
  neuron: Type.Integer(),
  sources: Type.Array(LexicalSourceSchema),
  label: Type.Optional(Type.String()),
  catalogueSource: Type.Optional(Type.String({ description: 'Where the catalogue entry comes from' })),
  score: Type.Optional(
    Type.Number({ description: 'The detector’s score, the cross-validated R² from spelling' }),
  ),
});
