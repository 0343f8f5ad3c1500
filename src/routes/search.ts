/**
 * Maximal-text search (Goh et al., 2021): POST /v1/search/max-text queues a hill-climbing search
 * for the text that most excites a neuron, or a direction over neurons, and answers 202 with a job
 * id to follow at /v1/jobs/{id}. An identical request whose result is cached answers 202 too, with
 * `cached: true` and a job that is already completed. GET /v1/neurons/{id}/max-text answers 200
 * with the best finished search of that neuron whatever its parameters (saying which), and when
 * none has finished starts the default-parameter search (or finds it running) and answers 202 with
 * its job id. A client may have JOBS_MAX_PER_OWNER searches queued or running (429 past it), and new
 * searches are refused while JOBS_MAX_QUEUED wait (503); both with Retry-After.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  defaultNeuronRequest,
  MAX_TEXT_CAPS as CAPS,
  MAX_TEXT_DEFAULTS as DEFAULTS,
  normaliseRequest,
  requestHash,
} from '../search/request.js';
import { LexicalUseSchema, NEURON_ID_ALLOWED, withErrors } from './schemas.js';
import { withAllowed } from './validation.js';
import { badRequest } from '../errors.js';
import type { LexicalSet } from '../attribution/lexical-neurons.js';

export const MaxTextResultSchema = Type.Object({
  text: Type.String({ description: 'The best text found' }),
  score: Type.Number({ description: 'Its objective d·(W·t/|t|), without the fluency penalty' }),
  ids: Type.Array(Type.Integer(), { description: 'Its BPE tokens (without start/end)' }),
  top: Type.Array(Type.Object({ text: Type.String(), score: Type.Number() }), {
    description: 'The best distinct texts',
  }),
  curve: Type.Array(Type.Number(), { description: 'Best objective after each step' }),
  steps: Type.Integer(),
  evaluations: Type.Integer({ description: 'Candidate texts scored' }),
  restartsUsed: Type.Integer(),
  stopReason: Type.Union([
    Type.Literal('steps'),
    Type.Literal('time'),
    Type.Literal('plateau'),
    Type.Literal('cancelled'),
  ]),
  elapsedMs: Type.Number(),
  resumedFrom: Type.Optional(
    Type.Object(
      { steps: Type.Integer(), evaluations: Type.Integer(), score: Type.Number() },
      {
        description:
          'Set when the search was taken over from a worker that died or was stopped: it went on from that worker’s last reported best text; curve covers the steps after it, steps and evaluations count both parts',
      },
    ),
  ),
});

/** What a search response says about the service's lexical set (src/attribution/lexical-neurons.ts). */
const SearchLexical = Type.Object(
  {
    ...LexicalUseSchema.properties,
    targets: Type.Array(Type.Integer(), {
      description:
        'The searched neurons that are lexical: the neuron itself, or the direction’s nonzero weights (after masking)',
    }),
    masked: Type.Integer({ description: 'Direction weights zeroed by excludeLexical' }),
  },
  {
    description:
      'The lexical set (catalogue and detected neurons): a lexical neuron’s maximal text follows spelling rather than meaning',
  },
);

const MaxTextBody = Type.Object(
  {
    neuron: Type.Optional(
      Type.Integer({ minimum: 0, description: 'The neuron to excite (or give direction)' }),
    ),
    direction: Type.Optional(
      Type.Array(Type.Number(), {
        minItems: 1,
        maxItems: 65_536,
        description: 'Weights over all neurons; the objective is d·(W·t/|t|)',
      }),
    ),
    length: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: CAPS.length,
        default: DEFAULTS.length,
        description: 'Most BPE tokens',
      }),
    ),
    steps: Type.Optional(Type.Integer({ minimum: 1, maximum: CAPS.steps, default: DEFAULTS.steps })),
    batch: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: CAPS.batch,
        default: DEFAULTS.batch,
        description:
          'Candidates per step, scored in one text-encoder run (in runs of BATCH_MAX_SIZE beyond it)',
      }),
    ),
    restarts: Type.Optional(Type.Integer({ minimum: 0, maximum: CAPS.restarts, default: DEFAULTS.restarts })),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: CAPS.seed, default: DEFAULTS.seed })),
    timeLimitS: Type.Optional(
      Type.Number({
        minimum: 0.1,
        maximum: CAPS.timeLimitS,
        description:
          'Optional wall-clock limit in seconds. Without it the search stops by its work (steps, restarts) only, ' +
          'so the same request gives the same text on any machine; a search stopped by this limit ' +
          '(stopReason "time") depends on the machine and is not cached as the request\'s answer',
      }),
    ),
    startText: Type.Optional(
      Type.String({ minLength: 1, maxLength: CAPS.startTextChars, description: 'Start from this text' }),
    ),
    excludeLexical: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'For a direction: zero the weights of the service’s lexical set first (GET /v1/neurons/lexical), as emotion fits do',
      }),
    ),
    fluency: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: CAPS.fluency,
        default: DEFAULTS.fluency,
        description:
          'Weight of the token-frequency fluency penalty (OpenAI Microscope’s text searches for RN50-x4 carry a language-model penalty of 0.0025 in their URLs)',
      }),
    ),
  },
  { additionalProperties: false },
);

const Queued = Type.Object({
  jobId: Type.String(),
  cached: Type.Boolean({ description: 'True: the result was cached and the job is already completed' }),
  deduplicated: Type.Boolean({ description: 'True: an identical job was already running; this is its id' }),
  lexical: Type.Optional(SearchLexical),
});

const SearchParameters = Type.Object(
  {
    length: Type.Integer(),
    steps: Type.Integer(),
    batch: Type.Integer(),
    restarts: Type.Integer(),
    seed: Type.Integer(),
    timeLimitS: Type.Union([Type.Number(), Type.Null()]),
    startText: Type.Union([Type.String(), Type.Null()]),
    fluency: Type.Number(),
  },
  { description: 'The parameters of the search that found this text' },
);

const NeuronMaxText = Type.Object({
  ...MaxTextResultSchema.properties,
  lexical: Type.Optional(SearchLexical),
  parameters: Type.Optional(SearchParameters),
  defaultParameters: Type.Optional(
    Type.Boolean({ description: 'True: the search ran with the default parameters' }),
  ),
});

/** The search's targets in the lexical set, and how many direction weights were masked. */
function searchLexical(set: LexicalSet, targets: readonly number[], masked = 0) {
  const lexical = new Set(set.neurons);
  return { ...set.use, targets: targets.filter((neuron) => lexical.has(neuron)), masked };
}

const NeuronParams = Type.Object({
  id: withAllowed(Type.Integer({ minimum: 0, description: 'Neuron (channel) index' }), NEURON_ID_ALLOWED),
});

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/v1/search/max-text',
    {
      schema: {
        tags: ['search'],
        summary: 'Queue a search for the text that most excites a neuron or a direction',
        body: MaxTextBody,
        response: withErrors({ 202: Queued }, [400, 413, 415, 429, 503]),
      },
    },
    async (request, reply) => {
      const { excludeLexical = false, ...body } = request.body;
      const set = await app.words.lexicalSet(undefined, { waitForBuild: true });
      let masked = 0;
      if (excludeLexical) {
        if (!body.direction)
          throw badRequest('excludeLexical applies to a direction, not to a single neuron');
        const direction = [...body.direction];
        for (const neuron of set.neurons)
          if (neuron < direction.length && direction[neuron] !== 0) {
            direction[neuron] = 0;
            masked++;
          }
        body.direction = direction;
      }
      const normalised = normaliseRequest(body, app.clip.neuronCount);
      const targets =
        normalised.neuron !== null
          ? [normalised.neuron]
          : (normalised.direction ?? []).flatMap((weight, neuron) => (weight !== 0 ? [neuron] : []));
      const submitted = await app.jobs.submit(normalised, app.jobClient(request).owner);
      return reply
        .code(202)
        .header('location', `/v1/jobs/${submitted.jobId}`)
        .send({ ...submitted, lexical: searchLexical(set, targets, masked) });
    },
  );

  app.get(
    '/v1/neurons/:id/max-text',
    {
      schema: {
        tags: ['search', 'neurons'],
        summary:
          "The neuron's maximal text: 200 with its best finished search whatever the parameters (saying which), else 202 with the default search's job",
        params: NeuronParams,
        response: withErrors({ 200: NeuronMaxText, 202: Queued }, [400, 429, 503]),
      },
    },
    async (request, reply) => {
      const normalised = defaultNeuronRequest(request.params.id, app.clip.neuronCount);
      const lexical = searchLexical(await app.words.lexicalSet(undefined, { waitForBuild: true }), [
        request.params.id,
      ]);
      const result = await app.jobs.cachedResult(normalised);
      const best = await app.jobs.bestForNeuron(request.params.id);
      // The best finished search, whatever its parameters; the default one when it is as good.
      const [found, parameters] =
        best && (!result || best.result.score > result.score)
          ? [best.result, best.request]
          : [result, result ? normalised : undefined];
      if (found && parameters) {
        const { length, steps, batch, restarts, seed, timeLimitS, startText, fluency } = parameters;
        const defaults = requestHash('', parameters) === requestHash('', normalised);
        return reply.code(200).send({
          ...found,
          lexical,
          parameters: { length, steps, batch, restarts, seed, timeLimitS, startText, fluency },
          defaultParameters: defaults,
        });
      }
      const submitted = await app.jobs.submit(normalised, app.jobClient(request).owner);
      return reply
        .code(202)
        .header('location', `/v1/jobs/${submitted.jobId}`)
        .send({ ...submitted, lexical });
    },
  );
};

export default routes;
