/**
 * Image-based word embeddings (src/words/): nearest words, word arithmetic, the words of a neuron,
 * lexical neurons, the region-neuron heuristic, and the admin routes that build the index.
 * Every route that needs the index answers 409 while it is missing, saying how to build it.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { LexicalNeuronSchema, LexicalUseSchema, NEURON_ID_ALLOWED, withErrors } from './schemas.js';
import { withAllowed } from './validation.js';
import { lexicalScore } from '../words/lexical.js';

const MAX_K = 1000;
const K = Type.Integer({ minimum: 1, maximum: MAX_K, default: 10, description: 'Words per list' });
const Word = Type.String({ minLength: 1, maxLength: 200, pattern: '\\S', description: 'A word or phrase' });
const NamedMask = Type.Union([Type.Literal('lexical'), Type.Literal('none')], {
  default: 'lexical',
  description:
    '"lexical": zero the lexical neurons (the catalogue’s and the detected ones; GET /v1/neurons/lexical) before the cosine; "none": use all neurons',
});

const Hit = Type.Object({ word: Type.String(), score: Type.Number() });

const NeighborsQuery = Type.Object(
  { word: Word, k: Type.Optional(K), mask: Type.Optional(NamedMask) },
  { additionalProperties: false },
);
const NeighborsResponse = Type.Object({
  word: Type.String(),
  inVocabulary: Type.Boolean({ description: 'False: the word was rastered and run on the fly' }),
  mask: Type.String(),
  lexical: Type.Optional(LexicalUseSchema),
  neighbors: Type.Array(Hit, { description: 'Cosine on the centred index, the word itself excluded' }),
});

const ArithmeticBody = Type.Object(
  {
    expression: Type.String({
      minLength: 1,
      maxLength: 1000,
      description: 'e.g. King - Man + Woman, or "red circle" - red + blue',
    }),
    k: Type.Optional(K),
    mask: Type.Optional(
      Type.Union([
        NamedMask,
        Type.Array(Type.Integer(), { maxItems: 100_000, description: 'Neuron ids to zero' }),
      ]),
    ),
    method: Type.Optional(
      Type.Union([Type.Literal('add'), Type.Literal('mul')], {
        default: 'add',
        description: '3CosAdd or 3CosMul (ε = 0.001)',
      }),
    ),
  },
  { additionalProperties: false },
);
const ArithmeticResponse = Type.Object({
  expression: Type.String(),
  terms: Type.Array(Type.Object({ sign: Type.Integer(), text: Type.String() })),
  method: Type.String(),
  lexical: Type.Optional(LexicalUseSchema),
  results: Type.Array(Hit, { description: 'Best first; the input words excluded' }),
});

const NeuronParams = Type.Object({
  id: withAllowed(Type.Integer({ minimum: 0, description: 'Neuron (channel) index' }), NEURON_ID_ALLOWED),
});
const WordActivation = Type.Object({
  word: Type.String(),
  activation: Type.Number({ description: 'Spatial-mean activation (uncentred)' }),
  centred: Type.Number({ description: 'Activation minus its mean over the vocabulary' }),
});
const TopWordsResponse = Type.Object({
  neuron: Type.Integer(),
  rankedBy: Type.Literal('activation'),
  top: Type.Array(WordActivation),
  bottom: Type.Array(WordActivation),
});

const LexicalQuery = Type.Object(
  {
    threshold: Type.Optional(
      Type.Number({
        minimum: -1,
        maximum: 1,
        description: 'Flag when the lexical score, the cross-validated R² from spelling, is ≥ threshold',
      }),
    ),
  },
  { additionalProperties: false },
);
const LexicalResponse = Type.Object({
  threshold: Type.Number(),
  method: Type.String(),
  words: Type.Integer({ description: 'Words in the regressions' }),
  folds: Type.Integer(),
  flagged: Type.Array(Type.Integer(), { description: 'Neurons the detector flags at the threshold' }),
  set: Type.Array(LexicalNeuronSchema, {
    description:
      'The lexical set that masks use: the catalogue’s lexical family and the flagged neurons, each with its sources',
  }),
  use: LexicalUseSchema,
  neurons: Type.Array(
    Type.Object({
      neuron: Type.Integer(),
      score: Type.Number(),
      spelling: Type.Number({ description: 'Cross-validated R² from spelling' }),
      meaning: Type.Number({ description: 'Cross-validated R² from the text embedding' }),
      lexical: Type.Boolean({ description: 'In the lexical set (flagged, or lexical in the catalogue)' }),
    }),
  ),
});

const StatsResponse = Type.Object({
  neurons: Type.Integer(),
  vocabularySize: Type.Integer(),
  geographicWords: Type.Integer(),
  regionShare: Type.Number({ description: 'Share of neurons whose top-5 words are all geographic' }),
  regionNeurons: Type.Array(Type.Integer()),
  buckets: Type.Array(Type.Object({ geographicInTop5: Type.Integer(), neurons: Type.Integer() })),
});

const IndexStatus = Type.Object({
  state: Type.Union([
    Type.Literal('missing'),
    Type.Literal('building'),
    Type.Literal('ready'),
    Type.Literal('failed'),
  ]),
  vocabulary: Type.Object({ size: Type.Integer(), source: Type.String(), sha256: Type.String() }),
  progress: Type.Optional(
    Type.Object({
      phase: Type.String(),
      done: Type.Integer(),
      total: Type.Integer(),
      resumedFrom: Type.Integer(),
      wordsPerSecond: Type.Number(),
      etaSeconds: Type.Union([Type.Number(), Type.Null()]),
      elapsedSeconds: Type.Number(),
    }),
  ),
  error: Type.Optional(Type.String()),
  builtAt: Type.Optional(Type.String()),
  lexical: Type.Boolean(),
});

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/words/neighbors',
    {
      schema: {
        tags: ['words'],
        summary: 'The nearest words of a word (image-based embeddings, cosine on the centred index)',
        querystring: NeighborsQuery,
        response: withErrors({ 200: NeighborsResponse }, [400, 409]),
      },
    },
    async (request) => {
      const { word, k = 10, mask = 'lexical' } = request.query;
      return { word, mask, ...(await app.words.neighbors(word, k, mask)) };
    },
  );

  app.post(
    '/v1/words/arithmetic',
    {
      schema: {
        tags: ['words'],
        summary: 'Word arithmetic (3CosAdd or 3CosMul) over the index',
        body: ArithmeticBody,
        response: withErrors({ 200: ArithmeticResponse }, [400, 409]),
      },
    },
    async (request) => {
      const { expression, k = 10, mask = 'lexical', method = 'add' } = request.body;
      const { terms, results, lexical } = await app.words.arithmetic(expression, k, mask, method);
      return {
        expression,
        terms,
        method,
        ...(lexical ? { lexical } : {}),
        results: results.map(({ word, score }) => ({ word, score })),
      };
    },
  );

  app.get(
    '/v1/neurons/:id/top-words',
    {
      schema: {
        tags: ['neurons'],
        summary: 'The words that activate a neuron most and least (ranked by activation)',
        params: NeuronParams,
        querystring: Type.Object({ k: Type.Optional(K) }, { additionalProperties: false }),
        response: withErrors({ 200: TopWordsResponse }, [400, 409]),
      },
    },
    async (request) => {
      const { id } = request.params;
      const words = await app.words.neuronWords(id, request.query.k ?? 10);
      return { neuron: id, rankedBy: 'activation' as const, ...words };
    },
  );

  app.get(
    '/v1/neurons/lexical',
    {
      schema: {
        tags: ['neurons'],
        summary:
          'The lexical set (catalogue and detected neurons, each with its sources) and the detector’s score of every neuron',
        querystring: LexicalQuery,
        response: withErrors({ 200: LexicalResponse }, [400, 409]),
      },
    },
    async (request) => {
      const { threshold, scores, flagged, set } = await app.words.lexical(request.query.threshold);
      const inSet = new Set(set.neurons);
      return {
        threshold,
        method: scores.method,
        words: scores.words,
        folds: scores.folds,
        flagged,
        set: set.entries,
        use: set.use,
        neurons: lexicalScore(scores).map((score, neuron) => ({
          neuron,
          score,
          spelling: scores.spelling[neuron],
          meaning: scores.meaning[neuron],
          lexical: inSet.has(neuron),
        })),
      };
    },
  );

  app.get(
    '/v1/neurons/stats',
    {
      schema: {
        tags: ['neurons'],
        summary: 'Region neurons: how many neurons have only geographic words among their top 5',
        response: withErrors({ 200: StatsResponse }, [409]),
      },
    },
    async () => app.words.regionStats(),
  );

  app.post(
    '/v1/admin/index',
    {
      config: { admin: true },
      schema: {
        tags: ['admin'],
        summary: 'Start building the word index in the background (resumes an interrupted build)',
        response: withErrors({ 200: IndexStatus, 202: IndexStatus }, [401, 403]),
      },
    },
    async (_request, reply) => {
      const status = app.words.startBuild();
      return reply.code(status.state === 'ready' ? 200 : 202).send(status);
    },
  );

  app.get(
    '/v1/admin/index',
    {
      config: { admin: true },
      schema: {
        tags: ['admin'],
        summary: 'The word index: state, vocabulary and build progress',
        response: withErrors({ 200: IndexStatus }, [401, 403]),
      },
    },
    async () => app.words.status(),
  );
};

export default routes;
