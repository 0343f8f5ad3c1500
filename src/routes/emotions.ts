/**
 * Emotion composition over app.emotions (src/plugins/emotions.ts; src/emotions/service.ts for the math):
 *   POST /v1/emotions/fit        sparse one-vs-rest fit over feelings-wheel emotions under templates
 *   GET  /v1/emotions            the wheel, the templates and the default composition
 *   GET  /v1/emotions/atlas      NMF atlas (2 or 7 factors) of the default composition, 2-D layout
 *   GET  /v1/emotions/{name}     one emotion's default composition
 *   POST /v1/concepts/sparse     the same analysis for any concepts, each given by ≥ 2 prompts
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  LIMITS,
  DEFAULT_NEURONS_PER_CONCEPT,
  DEFAULT_SCALING,
  emotionConcepts,
} from '../emotions/service.js';
import type { Composition, CompositionRequest } from '../emotions/types.js';
import {
  EMOTION_TEMPLATES,
  FEELINGS_WHEEL,
  WHEEL_EMOTIONS,
  wheelEmotion,
} from '../emotions/feelings-wheel.js';
import type { Selection } from '../sparse/one-vs-rest.js';
import { badRequest, notFound } from '../errors.js';
import { LexicalUseSchema, Text, withErrors } from './schemas.js';
import type { LexicalUse } from '../attribution/lexical-neurons.js';

const Template = Type.String({
  minLength: 2,
  maxLength: 500,
  description: 'A prompt template; {} stands for the word',
});

/** The choice of λ: at most one of lambda, neuronsPerEmotion (or neuronsPerConcept), cv. */
const SelectionFields = {
  lambda: Type.Optional(
    Type.Number({
      minimum: 0,
      maximum: 1e3,
      description: 'Fixed λ of (1/n)Σ log-loss + λ‖β‖₁ on the scaled features (see scaling)',
    }),
  ),
  cv: Type.Optional(
    Type.Integer({
      minimum: 2,
      maximum: LIMITS.folds,
      description: 'k-fold cross-validation, one-standard-error rule',
    }),
  ),
  model: Type.Optional(
    Type.Union([Type.Literal('one-vs-rest'), Type.Literal('multinomial')], {
      default: 'one-vs-rest',
      description:
        'one-vs-rest: one L1 logistic model per class (the article’s); multinomial: one softmax model of all classes, sharing λ (neurons per class is then the mean over classes)',
    }),
  ),
  excludeLexical: Type.Optional(
    Type.Union([Type.Boolean(), Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 8192 })], {
      default: true,
      description:
        'Mask lexical neurons, as the article did: true (the default) masks the service’s lexical set — the catalogue’s lexical family and the word index’s detected neurons (GET /v1/neurons/lexical); false masks none; a list masks those ids',
    }),
  ),
  scaling: Type.Optional(
    Type.Union([Type.Literal('shared'), Type.Literal('per-neuron')], {
      default: DEFAULT_SCALING,
      description:
        'shared: each neuron’s attribution centred, and all scaled by one factor, so neurons keep their relative sizes (attributions share one unit; a neuron that barely moves between prompts is not lifted to unit variance); per-neuron: each centred and scaled to unit variance (glmnet’s and scikit-learn StandardScaler’s standardisation)',
    }),
  ),
};

const NeuronsPerClass = Type.Integer({
  minimum: 1,
  maximum: 256,
  description: `Target neurons per class; each gets its own λ (default ${DEFAULT_NEURONS_PER_CONCEPT})`,
});

const EmotionFitBody = Type.Object(
  {
    emotions: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
        minItems: 1,
        maxItems: LIMITS.concepts,
        description: 'Feelings-wheel words (default: all 126)',
      }),
    ),
    templates: Type.Optional(
      Type.Array(Template, {
        minItems: 2,
        maxItems: LIMITS.templates,
        description: 'Default: the article’s three',
      }),
    ),
    neuronsPerEmotion: Type.Optional(NeuronsPerClass),
    ...SelectionFields,
  },
  { additionalProperties: false },
);

const ConceptsBody = Type.Object(
  {
    concepts: Type.Record(
      Type.String({ minLength: 1, maxLength: 200 }),
      Type.Array(Text, { minItems: 0, maxItems: LIMITS.promptsPerConcept }),
      { description: 'Concept name → its prompts (at least 2 each)' },
    ),
    neuronsPerConcept: Type.Optional(NeuronsPerClass),
    ...SelectionFields,
  },
  { additionalProperties: false },
);

const WeightedNeuron = Type.Object({
  neuron: Type.Integer(),
  weight: Type.Number({ description: 'Coefficient on the scaled attribution of the neuron (see scaling)' }),
  label: Type.Optional(Type.String()),
});

const FitDiagnostics = Type.Object({
  lambda: Type.Number(),
  objective: Type.Number(),
  iterations: Type.Integer(),
  converged: Type.Boolean(),
});

const CompositionFields = {
  fitId: Type.String({ description: 'Stable hash of the normalised request' }),
  model: Type.Union([Type.Literal('one-vs-rest'), Type.Literal('multinomial')]),
  scaling: Type.Union([Type.Literal('per-neuron'), Type.Literal('shared')]),
  lambda: Type.Union([Type.Number(), Type.Null()], { description: 'The shared λ; null when per class' }),
  accuracy: Type.Number({ description: 'Training accuracy of argmax over the classes’ linear predictors' }),
  samples: Type.Integer(),
  features: Type.Integer(),
  excluded: Type.Integer({ description: 'Neurons masked out' }),
  lexical: Type.Optional(
    Type.Object(
      { ...LexicalUseSchema.properties },
      { description: 'The lexical set masked (excludeLexical true, the default) and its sources' },
    ),
  ),
  fits: Type.Record(Type.String(), FitDiagnostics),
  work: Type.Object(
    {
      passes: Type.Integer({
        description:
          'Solver passes spent: proximal Newton steps (one-vs-rest) or sweeps over the classes (multinomial)',
      }),
      limit: Type.Union([Type.Integer(), Type.Null()], {
        description: 'The budget in passes (FIT_MAX_SWEEPS for multinomial fits); null when none',
      }),
      exhausted: Type.Boolean({
        description: 'Every pass was spent: fits not converged by then say converged: false',
      }),
    },
    {
      description:
        'The work the fit spent, counted in solver passes (never in time), so a request gives the same numbers on any machine',
    },
  ),
  cv: Type.Optional(
    Type.Object({
      folds: Type.Integer(),
      lambdaMin: Type.Number(),
      lambda1se: Type.Number(),
      accuracy: Type.Number({ description: 'Held-out accuracy at λ_1se' }),
    }),
  ),
};

const EmotionFitResponse = Type.Object({
  ...CompositionFields,
  emotions: Type.Record(Type.String(), Type.Array(WeightedNeuron)),
});

const ConceptsResponse = Type.Object({
  ...CompositionFields,
  concepts: Type.Record(Type.String(), Type.Array(WeightedNeuron)),
});

const Leaf = Type.Object({ name: Type.String() });
const Middle = Type.Object({ name: Type.String(), children: Type.Array(Leaf) });
const Core = Type.Object({ name: Type.String(), children: Type.Array(Middle) });

const EmotionsResponse = Type.Object({
  wheel: Type.Array(Core),
  templates: Type.Array(Type.String()),
  emotions: Type.Array(
    Type.Object({
      name: Type.String(),
      cores: Type.Array(Type.String()),
      ring: Type.String(),
      neurons: Type.Array(WeightedNeuron),
    }),
  ),
  fitId: Type.String(),
  accuracy: Type.Number(),
  excluded: Type.Integer({ description: 'Neurons masked out (the lexical set)' }),
  lexical: LexicalUseSchema,
});

const EmotionResponse = Type.Object({
  name: Type.String(),
  cores: Type.Array(Type.String()),
  ring: Type.String(),
  neurons: Type.Array(WeightedNeuron),
  lambda: Type.Number(),
  fitId: Type.String(),
});

const AtlasQuery = Type.Object(
  { factors: Type.Optional(Type.Union([Type.Literal(2), Type.Literal(7)], { default: 7 })) },
  { additionalProperties: false },
);

const AtlasResponse = Type.Object({
  fitId: Type.String(),
  factors: Type.Integer(),
  objective: Type.Number({ description: '½‖X − WH‖²_F' }),
  iterations: Type.Integer(),
  converged: Type.Boolean(),
  emotions: Type.Array(
    Type.Object({
      name: Type.String(),
      loadings: Type.Array(Type.Number()),
      x: Type.Number(),
      y: Type.Number(),
    }),
  ),
  factorTops: Type.Array(
    Type.Object({
      factor: Type.Integer(),
      emotions: Type.Array(Type.Object({ name: Type.String(), loading: Type.Number() })),
      neurons: Type.Array(
        Type.Object({
          neuron: Type.Integer(),
          sign: Type.Integer({ description: '+1: positive weights; −1: negative weights' }),
          weight: Type.Number(),
          label: Type.Optional(Type.String()),
        }),
      ),
    }),
  ),
});

type SelectionBody = Static<typeof EmotionFitBody> | Static<typeof ConceptsBody>;

/** The λ choice of a body; at most one of the three may be given. */
function selectionOf(body: SelectionBody, perClass: number | undefined): Selection {
  const given = [body.lambda !== undefined, perClass !== undefined, body.cv !== undefined].filter(
    Boolean,
  ).length;
  if (given > 1) throw badRequest('give at most one of lambda, neurons per class, cv');
  if (body.lambda !== undefined) return { kind: 'lambda', lambda: body.lambda };
  if (body.cv !== undefined) return { kind: 'cv', folds: body.cv };
  return { kind: 'support', size: perClass ?? DEFAULT_NEURONS_PER_CONCEPT };
}

function fitResponse(composition: Composition) {
  const { concepts, ...rest } = composition;
  const names = Object.keys(concepts);
  return {
    ...rest,
    compositions: Object.fromEntries(names.map((name) => [name, concepts[name].neurons])),
    fits: Object.fromEntries(
      names.map((name) => {
        const { lambda, objective, iterations, converged } = concepts[name];
        return [name, { lambda, objective, iterations, converged }];
      }),
    ),
  };
}

const routes: FastifyPluginAsyncTypebox = async (app) => {
  /** The neurons a fit masks: the lexical set by default (as in the article), none, or the given ids. */
  const excluded = async (
    option: boolean | number[] | undefined,
  ): Promise<{ exclude: number[]; lexical?: LexicalUse }> => {
    if (Array.isArray(option)) return { exclude: option };
    if (option === false) return { exclude: [] };
    const set = await app.emotions.lexicalNeurons();
    return { exclude: set.neurons, lexical: set.use };
  };

  app.post(
    '/v1/emotions/fit',
    {
      schema: {
        tags: ['emotions'],
        summary:
          'Sparse composition of emotions: L1 logistic regression (one-vs-rest or multinomial) on attribution vectors',
        body: EmotionFitBody,
        response: withErrors({ 200: EmotionFitResponse }, [400, 413, 415]),
      },
    },
    async (request) => {
      const body = request.body;
      const concepts = emotionConcepts(body.emotions, body.templates);
      const selection = selectionOf(body, body.neuronsPerEmotion);
      const { exclude, lexical } = await excluded(body.excludeLexical);
      const fit: CompositionRequest = {
        concepts,
        selection,
        model: body.model,
        exclude,
        scaling: body.scaling,
      };
      const { compositions, ...rest } = fitResponse(await app.emotions.compose(fit));
      return { ...rest, ...(lexical ? { lexical } : {}), emotions: compositions };
    },
  );

  app.post(
    '/v1/concepts/sparse',
    {
      schema: {
        tags: ['emotions'],
        summary: 'Sparse composition of any concepts, each given by at least 2 prompts',
        body: ConceptsBody,
        response: withErrors({ 200: ConceptsResponse }, [400, 413, 415]),
      },
    },
    async (request) => {
      const body = request.body;
      const entries = Object.entries(body.concepts);
      if (entries.length > LIMITS.concepts) throw badRequest(`at most ${LIMITS.concepts} concepts`);
      const selection = selectionOf(body, body.neuronsPerConcept);
      const { exclude, lexical } = await excluded(body.excludeLexical);
      const fit: CompositionRequest = {
        concepts: entries.map(([name, prompts]) => ({ name, prompts })),
        selection,
        model: body.model,
        exclude,
        scaling: body.scaling,
      };
      const { compositions, ...rest } = fitResponse(await app.emotions.compose(fit));
      return { ...rest, ...(lexical ? { lexical } : {}), concepts: compositions };
    },
  );

  app.get(
    '/v1/emotions',
    {
      schema: {
        tags: ['emotions'],
        summary: 'The feelings wheel, the templates and the default composition of every emotion',
        response: withErrors({ 200: EmotionsResponse }, []),
      },
    },
    async () => {
      const { composition, lexical } = await app.emotions.defaultComposition();
      return {
        wheel: FEELINGS_WHEEL as Static<typeof Core>[],
        templates: [...EMOTION_TEMPLATES],
        emotions: WHEEL_EMOTIONS.map((emotion) => ({
          ...emotion,
          neurons: composition.concepts[emotion.name]?.neurons ?? [],
        })),
        fitId: composition.fitId,
        accuracy: composition.accuracy,
        excluded: composition.excluded,
        lexical,
      };
    },
  );

  app.get(
    '/v1/emotions/atlas',
    {
      schema: {
        tags: ['emotions'],
        summary: 'NMF atlas of the default composition: loadings, factor tops and a seeded 2-D layout',
        querystring: AtlasQuery,
        response: withErrors({ 200: AtlasResponse }, [400]),
      },
    },
    async (request) => {
      const factors = request.query.factors ?? 7;
      const [{ composition }, atlas] = await Promise.all([
        app.emotions.defaultComposition(),
        app.emotions.atlas(factors),
      ]);
      return { fitId: composition.fitId, ...atlas };
    },
  );

  app.get(
    '/v1/emotions/:name',
    {
      schema: {
        tags: ['emotions'],
        summary: 'One emotion’s default composition',
        params: Type.Object({ name: Type.String({ minLength: 1, maxLength: 64 }) }),
        response: withErrors({ 200: EmotionResponse }, [404]),
      },
    },
    async (request) => {
      const emotion = wheelEmotion(request.params.name);
      if (!emotion)
        throw notFound(`unknown emotion "${request.params.name}": not a word of the feelings wheel`);
      const { composition } = await app.emotions.defaultComposition();
      const fit = composition.concepts[emotion.name];
      return { ...emotion, neurons: fit.neurons, lambda: fit.lambda, fitId: composition.fitId };
    },
  );
};

export default routes;
