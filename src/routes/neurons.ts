/**
 * The served catalogue of neuron labels (src/evidence/catalogue.ts) and the whole-model labelling
 * job (src/evidence/label-job.ts):
 *
 * - GET /v1/neurons/{id}: a neuron's entry: the served label (published > user > automatic), every
 *   label with its source, the published entry and the automatic entry with its evidence;
 * - PUT and DELETE /v1/neurons/{id}/label: a client's own label (its owner or an admin key changes it);
 * - POST /v1/neurons/labels: labels every neuron from a collection (202 with the job; progress,
 *   SSE and cancel through /v1/jobs/{id}); GET /v1/neurons/labels: what the catalogue holds.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { COLLECTION_ID_PATTERN } from '../collections/store.js';
import { MAX_LABEL_LENGTH } from '../evidence/catalogue.js';
import { PROBE_COLLECTION } from '../evidence/service.js';
import { notFound } from '../errors.js';
import { NeuronIdParams, withErrors } from './schemas.js';
import { withAllowed } from './validation.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

const Source = Type.Union([Type.Literal('published'), Type.Literal('user'), Type.Literal('automatic')], {
  description:
    'published: the model directory’s neurons.json (the article’s data for an RN50-x4 export); user: set with PUT /v1/neurons/{id}/label; automatic: the labelling job’s (POST /v1/neurons/labels)',
});

/** The published entry's fields (neurons.json), besides its label. */
const PublishedFields = {
  family: Type.Optional(Type.String()),
  source: Type.Optional(Type.String()),
  score: Type.Optional(Type.Number()),
  topWords: Type.Optional(
    Type.Array(Type.String(), { description: 'Words that activate it most when rastered' }),
  ),
  handLabel: Type.Optional(
    Type.String({ description: 'A hand label, where the label comes from elsewhere' }),
  ),
  credit: Type.Optional(Type.String({ description: 'Attribution the data’s licence asks for' })),
};

const StoredLabel = Type.Object({
  concept: Type.String(),
  score: Type.Number({ description: 'soft-WPMI (CLIP-Dissect)' }),
  combined: Type.Number({ description: 'z-score of the soft-WPMI plus z-score of the reading side' }),
  evidence: Type.Object({
    topImagesInCategory: Nullable(Type.Integer()),
    topImages: Type.Integer(),
    readingRank: Nullable(Type.Integer()),
    speakingRank: Nullable(Type.Integer()),
    inMaxText: Type.Optional(
      Nullable(
        Type.Boolean({
          description: 'The concept is a word of the neuron’s cached maximal text (null: none cached)',
        }),
      ),
    ),
  }),
});

export const MaxTextEvidenceSchema = Type.Object(
  { text: Type.String(), score: Type.Number(), steps: Type.Integer() },
  { description: 'The neuron’s best finished maximal-text search, where one is cached' },
);

const AutomaticEntry = Type.Object(
  {
    id: Type.Integer(),
    label: Nullable(Type.String({ description: 'The top soft-WPMI concept' })),
    score: Nullable(Type.Number()),
    labels: Type.Array(StoredLabel),
    topImages: Type.Array(
      Type.Object({
        imageId: Type.Integer(),
        name: Type.String(),
        category: Nullable(Type.String()),
        value: Type.Number(),
      }),
    ),
    topWords: Type.Array(Type.Object({ word: Type.String(), activation: Type.Number() })),
    topTexts: Type.Array(Type.Object({ text: Type.String(), attribution: Type.Number() })),
    multimodality: Nullable(
      Type.Object({
        score: Nullable(Type.Number()),
        multimodal: Type.Boolean(),
        topCategory: Type.String(),
        speakingRank: Nullable(Type.Integer()),
        readingRank: Nullable(Type.Integer()),
      }),
    ),
    maxText: Nullable(MaxTextEvidenceSchema),
  },
  { description: 'The labelling job’s entry: top images, words, texts, labels with scores, the measure' },
);

const ServedEntry = Type.Object({
  id: Type.Integer(),
  label: Nullable(Type.String({ description: 'The served label: published > user > automatic' })),
  labelSource: Nullable(Source),
  ...PublishedFields,
  labels: Type.Array(
    Type.Object({
      label: Type.String(),
      source: Source,
      score: Nullable(Type.Number()),
      from: Nullable(
        Type.String({
          description: 'published: the catalogue’s source; user: the owner; automatic: the collection',
        }),
      ),
      updatedAt: Nullable(Type.String()),
    }),
    { description: 'Every label of the neuron with its source, in order of precedence' },
  ),
  automatic: Type.Optional(AutomaticEntry),
});

const LabelBody = Type.Object(
  {
    label: withAllowed(
      Type.String({ minLength: 1, maxLength: 1000, description: `1 to ${MAX_LABEL_LENGTH} characters` }),
      `label must be a string of 1 to ${MAX_LABEL_LENGTH} characters`,
    ),
  },
  { additionalProperties: false },
);

const LabelJobBody = Type.Object(
  {
    collection: withAllowed(
      Type.Optional(
        Type.String({
          pattern: COLLECTION_ID_PATTERN,
          maxLength: 64,
          description: `The collection to label from (default "${PROBE_COLLECTION}")`,
        }),
      ),
      'collection must be a collection id: 1 to 64 lower-case letters, digits and inner hyphens',
    ),
  },
  { additionalProperties: false },
);

export const LabelProgressSchema = Type.Object(
  {
    collection: Type.String(),
    done: Type.Integer({ description: 'Neurons labelled (written shards and shards in flight)' }),
    total: Type.Integer(),
    shards: Type.Object({ total: Type.Integer(), written: Type.Integer(), running: Type.Integer() }),
    resumedShards: Type.Integer({ description: 'Shards already written when this run resumed' }),
    neuronsPerSecond: Nullable(Type.Number()),
  },
  { title: 'LabelProgress', description: 'Labelling every neuron (kind neuron-labels)' },
);

export const LabelShardProgressSchema = Type.Object(
  { job: Type.String(), shard: Type.Integer(), done: Type.Integer(), total: Type.Integer() },
  { title: 'LabelShardProgress', description: 'A shard of neurons (kind neuron-labels-shard)' },
);

export const LabelResultSchema = Type.Object(
  {
    collection: Type.String(),
    images: Type.Integer(),
    neurons: Type.Integer(),
    labelled: Type.Integer(),
    multimodalShare: Nullable(Type.Number()),
    maxTexts: Type.Integer({ description: 'Neurons whose evidence carries a cached maximal text' }),
    resumedShards: Type.Integer(),
    workers: Type.Array(Type.String(), { description: 'Processes that computed shards (pid@host)' }),
  },
  { title: 'LabelResult' },
);

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const { catalogue } = app.neuronLabels;

  app.get(
    '/v1/neurons/:id',
    {
      schema: {
        tags: ['neurons'],
        summary: 'A neuron in the served catalogue: its label by precedence and every label with its source',
        description:
          'The served label follows published (neurons.json) > user (PUT /v1/neurons/{id}/label) > automatic (POST /v1/neurons/labels): an automatic label never replaces a published or user one; all are listed with their sources. 404 when no source labels the neuron.',
        params: NeuronIdParams,
        response: withErrors({ 200: ServedEntry }, [400, 404]),
      },
    },
    async (request) => {
      const entry = await catalogue.entry(Number(request.params.id));
      if (!catalogue.has(entry.id)) {
        throw notFound(
          `neuron ${entry.id} has no entry in this model's catalogue (no published, user or automatic label): PUT /v1/neurons/${entry.id}/label sets one, POST /v1/neurons/labels labels every neuron`,
        );
      }
      return entry;
    },
  );

  app.put(
    '/v1/neurons/:id/label',
    {
      schema: {
        tags: ['neurons'],
        summary: 'Set your label of a neuron (served after a published label, before an automatic one)',
        description:
          'Trimmed, 1 to 100 characters. A label set by another client is theirs: only they or an admin key may replace it (403). Stored under DATA_DIR, shared by replicas on the same volume.',
        params: NeuronIdParams,
        body: LabelBody,
        response: withErrors({ 200: ServedEntry }, [400, 401, 403]),
      },
    },
    async (request) =>
      catalogue.setUserLabel(Number(request.params.id), request.body.label, app.jobClient(request)),
  );

  app.delete(
    '/v1/neurons/:id/label',
    {
      schema: {
        tags: ['neurons'],
        summary: 'Remove your label of a neuron (its owner or an admin key)',
        params: NeuronIdParams,
        response: withErrors({ 200: ServedEntry }, [400, 401, 403, 404]),
      },
    },
    async (request) => catalogue.deleteUserLabel(Number(request.params.id), app.jobClient(request)),
  );

  app.post(
    '/v1/neurons/labels',
    {
      schema: {
        tags: ['neurons', 'jobs'],
        summary: 'Label every neuron from a collection (a job): its result becomes the automatic catalogue',
        description:
          'Answers 202 with the job (kind neuron-labels); GET /v1/jobs/{id} and /events give its progress (neurons labelled, shards), DELETE /v1/jobs/{id} cancels it. Each neuron gets its top images, words and texts, its soft-WPMI labels with scores and evidence (with the cached maximal text where one exists) and the multimodality measure. A labelling of the same collection already running is joined.',
        body: LabelJobBody,
        response: withErrors(
          {
            202: Type.Object({
              jobId: Type.String({ description: 'GET /v1/jobs/{jobId} (or its /events) follows it' }),
              collection: Type.String(),
              deduplicated: Type.Boolean({
                description: 'A labelling of this collection was running: joined',
              }),
            }),
          },
          [400, 401, 404, 409, 503],
        ),
      },
    },
    async (request, reply) => {
      const collection = request.body?.collection ?? PROBE_COLLECTION;
      const manifest = await app.collections.get(collection);
      await app.collections.requireIndexed(manifest);
      const submitted = await app.neuronLabels.submit(collection, app.jobClient(request).owner);
      return reply
        .code(202)
        .send({ jobId: submitted.jobId, collection, deduplicated: submitted.deduplicated });
    },
  );

  app.get(
    '/v1/neurons/labels',
    {
      schema: {
        tags: ['neurons'],
        summary: 'What the served catalogue holds: labels per source and the last automatic labelling',
        response: withErrors(
          {
            200: Type.Object({
              precedence: Type.Array(Source),
              counts: Type.Object({
                published: Type.Integer(),
                user: Type.Integer(),
                automatic: Type.Integer(),
              }),
              automatic: Nullable(
                Type.Object({
                  collection: Type.String(),
                  images: Type.Integer(),
                  jobId: Type.String(),
                  finishedAt: Type.String(),
                  multimodalShare: Nullable(Type.Number()),
                  maxTexts: Type.Integer(),
                }),
              ),
            }),
          },
          [400],
        ),
      },
    },
    async () => {
      await catalogue.refresh();
      const automatic = catalogue.automatic;
      return {
        precedence: ['published' as const, 'user' as const, 'automatic' as const],
        counts: catalogue.counts(),
        automatic: automatic && {
          collection: automatic.collection,
          images: automatic.images,
          jobId: automatic.jobId,
          finishedAt: automatic.finishedAt,
          multimodalShare: automatic.multimodalShare,
          maxTexts: automatic.maxTexts,
        },
      };
    },
  );
};

export default routes;
