/**
 * A neuron's evidence (GET /v1/neurons/{id}/evidence): its three sides (seeing: a collection's
 * categories and top images; reading: the word index's top words; speaking for: the top texts of the
 * text-side index), the multimodality measure and its automatic labels; and the list of neurons
 * (GET /v1/neurons), filtered, sorted by the measure and paged. docs/neuron-evidence.md defines them.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { COLLECTION_ID_PATTERN } from '../collections/store.js';
import { EXPORT_FORMAT } from '../evidence/export.js';
import { TOP_K_AGREEMENT } from '../evidence/measure.js';
import { NeuronIdParams, withErrors } from './schemas.js';
import { withAllowed } from './validation.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

/** A collection id (optional; withAllowed after Type.Optional, which copies the schema). */
const CollectionQuery = withAllowed(
  Type.Optional(
    Type.String({
      pattern: COLLECTION_ID_PATTERN,
      maxLength: 64,
      description: 'Collection id; by default the model’s probe collection ("probe") when there is one',
    }),
  ),
  'collection must be a collection id: 1 to 64 lower-case letters, digits and inner hyphens',
);

const EvidenceQuery = Type.Object(
  {
    collection: CollectionQuery,
    k: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, default: 10, description: 'Entries per side' })),
  },
  { additionalProperties: false },
);

const CatalogueEntry = Type.Object({
  id: Type.Integer(),
  label: Type.Optional(Type.String()),
  family: Type.Optional(Type.String()),
  source: Type.Optional(Type.String()),
  score: Type.Optional(Type.Number()),
  topWords: Type.Optional(Type.Array(Type.String())),
  handLabel: Type.Optional(Type.String()),
  credit: Type.Optional(Type.String()),
});

const Agreement = Type.Object({
  rho: Nullable(Type.Number({ description: 'Spearman’s ρ over the shared concepts' })),
  significant: Nullable(
    Type.Boolean({ description: 'ρ above z₀.₉₉/√(n − 1), one-sided 1% under independence' }),
  ),
});

const Multimodality = Type.Object(
  {
    topCategory: Type.String({ description: 'The seeing side’s top category (highest mean activation)' }),
    speakingRank: Nullable(Type.Integer({ description: 'Its rank among the speaking side’s texts' })),
    readingRank: Nullable(Type.Integer({ description: 'Its rank among the reading side’s words' })),
    speakingOf: Type.Integer(),
    readingOf: Type.Integer(),
    multimodal: Type.Boolean({
      description: `The top category is in the top ${TOP_K_AGREEMENT} of both the speaking and the reading side`,
    }),
    shared: Type.Integer({ description: 'Concepts shared by the three sides' }),
    agreement: Type.Object({
      seeingSpeaking: Agreement,
      seeingReading: Agreement,
      readingSpeaking: Agreement,
    }),
    score: Nullable(
      Type.Number({ description: 'The mean of the three ρ: what sort=multimodality orders by' }),
    ),
  },
  { description: 'Whether the three sides name the same concept (docs/neuron-evidence.md)' },
);

const AutoLabel = Type.Object({
  concept: Type.String(),
  score: Type.Number({ description: 'soft-WPMI (CLIP-Dissect)' }),
  combined: Type.Number({ description: 'z-score of the soft-WPMI plus z-score of the reading side' }),
  evidence: Type.Object({
    topImagesInCategory: Nullable(
      Type.Integer({ description: 'The neuron’s top images (the soft-WPMI’s set) in this category' }),
    ),
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

const EvidenceResponse = Type.Object({
  neuron: Type.Integer(),
  catalogue: Nullable(CatalogueEntry),
  lexical: Type.Boolean({ description: 'In the lexical set (catalogue and word-index detector)' }),
  collection: Nullable(Type.String()),
  images: Nullable(Type.Integer({ description: 'Indexed images of the collection' })),
  seeing: Nullable(
    Type.Object({
      categories: Type.Array(
        Type.Object({ category: Type.String(), mean: Type.Number(), images: Type.Integer() }),
        { description: 'Categories by mean activation, highest first' },
      ),
      topImages: Type.Array(
        Type.Object({
          imageId: Type.Integer(),
          name: Type.String(),
          category: Nullable(Type.String()),
          caption: Nullable(Type.String()),
          value: Type.Number(),
          thumbnailUrl: Type.String(),
        }),
      ),
    }),
  ),
  seeingUnavailable: Type.Optional(Type.String()),
  reading: Nullable(
    Type.Object({
      words: Type.Array(
        Type.Object({ word: Type.String(), activation: Type.Number(), centred: Type.Number() }),
      ),
    }),
  ),
  readingUnavailable: Type.Optional(Type.String()),
  speaking: Type.Object({
    templates: Type.Array(Type.String()),
    vocabulary: Type.Integer({ description: 'Texts in the text-side index' }),
    texts: Type.Array(
      Type.Object({
        text: Type.String(),
        attribution: Type.Number({ description: 'The neuron’s component of W·t/|t| (template mean)' }),
      }),
    ),
  }),
  multimodality: Nullable(Multimodality),
  labels: Type.Array(AutoLabel, { description: 'Automatic labels (CLIP-Dissect soft-WPMI), best first' }),
  maxText: Type.Optional(
    Nullable(
      Type.Object(
        { text: Type.String(), score: Type.Number(), steps: Type.Integer() },
        {
          description:
            'The neuron’s best finished maximal-text search where one is cached (src/search/): label evidence; none is run here',
        },
      ),
    ),
  ),
});

const Sort = Type.Union([Type.Literal('id'), Type.Literal('multimodality'), Type.Literal('label')], {
  default: 'id',
  description: 'id; multimodality (the measure’s score, highest first); label (alphabetical)',
});

const ListQuery = Type.Object(
  {
    collection: CollectionQuery,
    sort: Type.Optional(Sort),
    family: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: 'A family of the catalogue (colour, word, …), or "none" for neurons without one',
      }),
    ),
    lexical: Type.Optional(
      Type.Union([Type.Literal('true'), Type.Literal('false')], {
        description: 'Only lexical (true) or non-lexical (false) neurons',
      }),
    ),
    q: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 100,
        description: 'Search in the label and the automatic label (case-insensitive)',
      }),
    ),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  },
  { additionalProperties: false },
);

const ListResponse = Type.Object({
  collection: Nullable(Type.String()),
  total: Type.Integer({ description: 'Neurons that pass the filters' }),
  offset: Type.Integer(),
  limit: Type.Integer(),
  multimodalShare: Nullable(
    Type.Number({ description: 'Share of the model’s measured neurons the measure calls multimodal' }),
  ),
  families: Type.Array(Type.String(), {
    description: 'The families of the catalogue, sorted (what family= accepts, with "none")',
  }),
  neurons: Type.Array(
    Type.Object({
      id: Type.Integer(),
      label: Nullable(Type.String()),
      family: Nullable(Type.String()),
      lexical: Type.Boolean(),
      autoLabel: Nullable(Type.Object({ concept: Type.String(), score: Type.Number() })),
      multimodality: Nullable(
        Type.Object({
          score: Nullable(Type.Number()),
          multimodal: Type.Boolean(),
          topCategory: Type.String(),
        }),
      ),
    }),
  ),
});

const Examples = Type.Integer({
  minimum: 1,
  maximum: 50,
  default: 10,
  description: 'Top images, images per quantile band, texts each way and words',
});

const ExportQuery = Type.Object(
  { collection: CollectionQuery, examples: Type.Optional(Examples) },
  { additionalProperties: false },
);

const ExportAllQuery = Type.Object(
  {
    collection: CollectionQuery,
    examples: Type.Optional(Examples),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0 })),
    limit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1000, default: 1000, description: 'Neurons from offset' }),
    ),
  },
  { additionalProperties: false },
);

const NeuronExport = Type.Object(
  {
    format: Type.Literal(EXPORT_FORMAT),
    modelId: Type.String({ description: 'The first 12 hex digits of the model’s sha256' }),
    layer: Type.String(),
    index: Type.String({ description: 'The neuron id, as a string (as Neuronpedia writes it)' }),
    collection: Nullable(Type.String()),
    maxActApprox: Nullable(Type.Number()),
    frac_nonzero: Nullable(Type.Number({ description: 'Share of the collection’s images above 0' })),
    freq_hist_data_bar_heights: Type.Array(Type.Integer(), { description: 'Histogram counts (20 bins)' }),
    freq_hist_data_bar_values: Type.Array(Type.Number(), {
      description: 'Bin centres, parallel to the counts',
    }),
    activations: Type.Array(
      Type.Object({
        imageId: Type.Integer(),
        name: Type.String(),
        category: Nullable(Type.String()),
        caption: Nullable(Type.String()),
        thumbnailUrl: Type.String(),
        values: Type.Array(Type.Number(), { description: 'The spatial mean of the neuron’s map' }),
        maxValue: Type.Number(),
        quantile_from: Type.Number(),
        quantile_to: Type.Number(),
      }),
      { description: 'The top images, then examples of 5 quantile bands (top first)' },
    ),
    pos_str: Type.Array(Type.String(), { description: 'Texts the neuron speaks for most (W·t/|t|)' }),
    pos_values: Type.Array(Type.Number()),
    neg_str: Type.Array(Type.String(), { description: 'Texts it speaks for least' }),
    neg_values: Type.Array(Type.Number()),
    explanations: Type.Array(
      Type.Object({
        description: Type.String(),
        score: Nullable(Type.Number()),
        typeName: Type.String({ description: '"catalogue" or "automatic"' }),
        explanationModelName: Type.String(),
      }),
    ),
    top_words: Type.Array(Type.Object({ word: Type.String(), activation: Type.Number() })),
    multimodality: Nullable(Multimodality),
  },
  { description: 'A neuron in a shape close to Neuronpedia’s feature export (docs/neuron-evidence.md)' },
);

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/neurons/:id/evidence',
    {
      schema: {
        tags: ['neurons'],
        summary:
          'A neuron’s three sides (seeing, reading, speaking for), its multimodality and automatic labels',
        description:
          'Seeing: the categories of a collection by mean activation and its top images; reading: the words of the word index that activate it most when rastered; speaking for: the texts whose attribution W·t/|t| it carries most. The measure says whether the three name the same concept; the labels are CLIP-Dissect’s soft-WPMI over the collection. Without a collection (and no "probe" collection) only reading and speaking are given.',
        params: NeuronIdParams,
        querystring: EvidenceQuery,
        response: withErrors({ 200: EvidenceResponse }, [400, 404, 409, 503]),
      },
    },
    async (request) => {
      const neuron = Number(request.params.id);
      const { collection, k = 10 } = request.query;
      app.evidence.checkNeuron(neuron);
      const evidence = await app.evidence.evidence(neuron, { collection, k });
      const id = evidence.collection;
      return {
        ...evidence,
        seeing: evidence.seeing && {
          categories: evidence.seeing.categories,
          topImages: evidence.seeing.topImages.map((image) => ({
            imageId: image.imageId,
            name: image.name,
            category: image.category,
            caption: image.caption,
            value: image.value,
            thumbnailUrl: `/v1/collections/${id}/images/${image.imageId}/thumbnail`,
          })),
        },
      };
    },
  );

  app.get(
    '/v1/neurons/:id/export',
    {
      schema: {
        tags: ['neurons'],
        summary: 'A neuron as JSON in a shape close to Neuronpedia’s feature export',
        description:
          'Activation examples with values (top images and quantile bands), the activation histogram, explanations with scores (catalogue and automatic), the top and bottom texts (pos_str/neg_str), top words and the multimodality measure. Field names follow Neuronpedia’s where an image neuron has the same thing.',
        params: NeuronIdParams,
        querystring: ExportQuery,
        response: withErrors({ 200: NeuronExport }, [400, 404, 409, 503]),
      },
    },
    async (request) => {
      const neuron = Number(request.params.id);
      app.evidence.checkNeuron(neuron);
      const { collection, examples = 10 } = request.query;
      return app.evidence.exportNeuron(neuron, { collection, examples });
    },
  );

  app.get(
    '/v1/neurons/export',
    {
      schema: {
        tags: ['neurons'],
        summary: 'Every neuron (or a page of them) in the export shape of GET /v1/neurons/{id}/export',
        querystring: ExportAllQuery,
        response: withErrors(
          {
            200: Type.Object({
              total: Type.Integer(),
              offset: Type.Integer(),
              neurons: Type.Array(NeuronExport),
            }),
          },
          [400, 404, 409, 503],
        ),
      },
    },
    async (request) => {
      const { collection, examples = 10, offset = 0, limit = 1000 } = request.query;
      const result = await app.evidence.exportAll({ collection, examples, offset, limit });
      return { total: result.total, offset, neurons: result.neurons };
    },
  );

  app.get(
    '/v1/neurons',
    {
      schema: {
        tags: ['neurons'],
        summary: 'Neurons with their label, family, lexical flag, automatic label and multimodality',
        description:
          'Filter by family, lexical or not and a label search; sort by id, label or the multimodality score (which needs a collection: the "probe" collection by default); page with offset and limit.',
        querystring: ListQuery,
        response: withErrors({ 200: ListResponse }, [400, 404, 409, 503]),
      },
    },
    async (request) => {
      const { collection, sort = 'id', family, lexical, q, offset = 0, limit = 50 } = request.query;
      const result = await app.evidence.list({
        collection,
        sort,
        family,
        lexical: lexical === undefined ? undefined : lexical === 'true',
        q,
        offset,
        limit,
      });
      return { ...result, offset, limit, families: app.evidence.families() };
    },
  );
};

export default routes;
