/**
 * POST /v1/typographic/attack: write a text on images and classify them before and after (with its
 * explanation and, with `ablate`, the defence); POST /v1/typographic/stroop: colour words in other
 * inks, read or seen? See src/typographic/service.ts for the definitions.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { MAX_BODY_BYTES } from '../limits.js';
import { badRequest, notFound, payloadTooLarge } from '../errors.js';
import { COLOUR_FORMS, hexOf, NAMED_COLOURS, namedColour, parseColour } from '../typographic/colour.js';
import { DEFAULT_FONT, FONT_NAMES } from '../typographic/fonts.js';
import { PASTE_DEFAULTS, PASTE_LIMITS } from '../typographic/paste.js';
import { attackJobData, MAX_ATTACK_JOB_IMAGES, withCollectionImages } from '../typographic/job.js';
import { categoryLabels, collectionImages, type CollectionImage } from '../typographic/collection-sample.js';
import { DEFAULT_TEMPLATES, TYPOGRAPHIC_LIMITS, type StroopInk } from '../typographic/service.js';
import { LexicalUseSchema } from './schemas.js';
import { bodyTooLargeAdvice, imageBytes, multipartToBody } from './image-input.js';
import { ImageField, Text, withErrors } from './schemas.js';
import { withAllowed } from './validation.js';
import { COLLECTION_ID_PATTERN } from '../collections/store.js';

/** Neurons explained per image when explain is left out. */
const DEFAULT_EXPLAIN = 5;

const Labels = Type.Array(Text, {
  minItems: 1,
  maxItems: TYPOGRAPHIC_LIMITS.maxLabels,
  description: `The classes to classify among (zero-shot), 1 to ${TYPOGRAPHIC_LIMITS.maxLabels}`,
});

const Templates = Type.Array(
  Type.String({ minLength: 2, maxLength: 500, description: 'A prompt template; {} stands for the label' }),
  {
    minItems: 1,
    maxItems: TYPOGRAPHIC_LIMITS.maxTemplates,
    description: `Prompt templates, averaged per label (the prompt ensemble); default ${JSON.stringify(DEFAULT_TEMPLATES)}`,
  },
);

const Colour = Type.String({ minLength: 1, maxLength: 40, description: COLOUR_FORMS });

const Fraction = (description: string) => Type.Number({ minimum: 0, maximum: 1, description });

const AttackBody = Type.Object(
  {
    image: Type.Optional(ImageField),
    images: Type.Optional(
      Type.Array(ImageField, {
        minItems: 1,
        description: `Several images as base64 (or the multipart file field "image" repeated): up to ${TYPOGRAPHIC_LIMITS.maxImages} are answered at once; up to ${MAX_ATTACK_JOB_IMAGES} become a job (202 with its id); more is a 413`,
      }),
    ),
    collection: withAllowed(
      Type.Optional(
        Type.String({
          pattern: COLLECTION_ID_PATTERN,
          maxLength: 64,
          description:
            'Attack images of this collection (its id) instead of uploaded ones: those of imageIds, or a sample. Each image’s category is its true label when it is among labels',
        }),
      ),
      'collection must be a collection id: 1 to 64 lower-case letters, digits and inner hyphens',
    ),
    imageIds: Type.Optional(
      Type.Array(Type.Integer({ minimum: 0 }), {
        minItems: 1,
        description: 'With collection: the indexed images to attack, by id',
      }),
    ),
    sample: Type.Optional(
      Type.Object(
        {
          count: Type.Integer({
            minimum: 1,
            description: `Images drawn without replacement among the indexed ones; above ${TYPOGRAPHIC_LIMITS.maxImages} the attack is a job, above ${MAX_ATTACK_JOB_IMAGES} a 413`,
          }),
          seed: Type.Optional(
            Type.Integer({
              minimum: 0,
              maximum: 2 ** 32 - 1,
              default: 0,
              description: 'The same seed draws the same images from the same collection',
            }),
          ),
          categories: Type.Optional(
            Type.Array(Type.String({ minLength: 1, maxLength: 200 }), {
              minItems: 1,
              maxItems: 256,
              description: 'Draw only among images of these categories of the collection',
            }),
          ),
        },
        { additionalProperties: false, description: 'With collection: a seeded sample of its images' },
      ),
    ),
    trueLabels: Type.Optional(
      Type.Array(Text, {
        description:
          'The true label of each uploaded image, among labels: gives the clean accuracy (a collection’s come from its categories)',
      }),
    ),
    text: Type.String({ minLength: 1, maxLength: 200, description: 'The text written on every image' }),
    font: Type.Optional(
      Type.Union(
        FONT_NAMES.map((name) => Type.Literal(name)),
        { default: DEFAULT_FONT, description: 'A DejaVu face (GET /v1/typographic/options lists them)' },
      ),
    ),
    size: Type.Optional(
      Type.Number({
        minimum: PASTE_LIMITS.minSize,
        maximum: PASTE_LIMITS.maxSize,
        default: PASTE_DEFAULTS.size,
        description: 'Font size as a fraction of the model’s input side S',
      }),
    ),
    x: Type.Optional(
      Fraction(`Centre of the text from the left, as a fraction of S (default ${PASTE_DEFAULTS.x})`),
    ),
    y: Type.Optional(
      Fraction(`Centre of the text from the top, as a fraction of S (default ${PASTE_DEFAULTS.y})`),
    ),
    colour: Type.Optional({
      ...Colour,
      description: `The ink (default ${PASTE_DEFAULTS.colour}): ${COLOUR_FORMS}`,
    }),
    box: Type.Optional({
      ...Colour,
      description: `A background box behind the text, in this colour: ${COLOUR_FORMS}`,
    }),
    padding: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 2,
        description: `The box’s margin as a fraction of the font size (default ${PASTE_DEFAULTS.padding})`,
      }),
    ),
    labels: Labels,
    templates: Type.Optional(Templates),
    target: Type.Optional({
      ...Text,
      description: 'The class the text attacks, among labels; default: the text itself when it is a label',
    }),
    ablate: Type.Optional(
      Type.Union(
        [
          Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1, maxItems: TYPOGRAPHIC_LIMITS.maxEdits }),
          Type.Literal('lexical'),
        ],
        {
          description:
            'The defence: neurons zeroed at the neuron layer (all positions) before the head — neuron ids, or "lexical" (the service’s lexical set)',
        },
      ),
    ),
    explain: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: TYPOGRAPHIC_LIMITS.maxExplainNeurons,
        default: DEFAULT_EXPLAIN,
        description:
          'Neurons per image whose contribution to the winning logit changed most (0: no explanation)',
      }),
    ),
    returnImages: Type.Optional(
      Type.Boolean({ default: false, description: 'Return each attacked S × S input as a base64 PNG' }),
    ),
  },
  { additionalProperties: false },
);

const Nullable = (description: string) => Type.Union([Type.Number(), Type.Null()], { description });

const ProportionSchema = Type.Object({
  successes: Type.Integer(),
  n: Type.Integer(),
  rate: Nullable('successes / n (null when n = 0)'),
  low: Nullable('Wilson 95% interval, lower end'),
  high: Nullable('Wilson 95% interval, upper end'),
});

const PredictionSchema = Type.Object({
  probabilities: Type.Array(Type.Number(), {
    description: 'Zero-shot probabilities, in the order of labels',
  }),
  predicted: Type.String(),
});

const MeasurementFields = {
  attack: { ...ProportionSchema, description: 'Attacked successfully among the eligible images' },
  ineligible: Type.Integer({
    description: 'Images whose clean prediction (or true label) already was the target',
  }),
  cleanAccuracy: Type.Optional({ ...ProportionSchema, description: 'Clean predictions equal to trueLabels' }),
  attackedAccuracy: Type.Optional({
    ...ProportionSchema,
    description: 'Attacked predictions equal to trueLabels',
  }),
};

export const AttackResponse = Type.Object(
  {
    text: Type.String(),
    target: Type.String(),
    labels: Type.Array(Type.String()),
    templates: Type.Array(Type.String()),
    images: Type.Array(
      Type.Object({
        imageId: Type.Optional(Type.Integer({ description: 'The image’s id in the collection attacked' })),
        category: Type.Optional(
          Type.Union([Type.String(), Type.Null()], { description: 'Its category in the collection' }),
        ),
        changedShare: Type.Number({ description: 'Share of the S × S input’s pixels the text changed' }),
        trueLabel: Type.Optional(Type.String()),
        before: PredictionSchema,
        after: PredictionSchema,
        eligible: Type.Boolean({
          description: 'The clean prediction (and the true label, when given) is not the target',
        }),
        success: Type.Boolean({ description: 'Eligible, and the attacked image is predicted as the target' }),
        explanation: Type.Optional(
          Type.Object({
            label: Type.String({ description: 'The class explained: the attacked image’s prediction' }),
            logitBefore: Type.Number(),
            logitAfter: Type.Number(),
            bilinearChange: Type.Number({
              description: 'Σ of every neuron’s change: the bilinear part of the logit’s change',
            }),
            lexicalShare: Nullable('Σ change over lexical neurons / Σ change over all'),
            lexicalShareOfAbsolute: Nullable('Σ |change| over lexical neurons / Σ |change| over all'),
            neurons: Type.Array(
              Type.Object({
                neuron: Type.Integer(),
                label: Type.Optional(Type.String()),
                before: Type.Number({ description: 'x_i·a_i on the clean image, in logit units' }),
                after: Type.Number({ description: 'x_i·a_i on the attacked image, in logit units' }),
                change: Type.Number(),
                lexical: Type.Boolean(),
              }),
            ),
          }),
        ),
        defended: Type.Optional(
          Type.Object({
            before: PredictionSchema,
            after: PredictionSchema,
            eligible: Type.Boolean(),
            success: Type.Boolean(),
          }),
        ),
        attackedPng: Type.Optional(Type.String({ description: 'The attacked input, PNG, base64' })),
      }),
    ),
    summary: Type.Object({
      ...MeasurementFields,
      meanChangedShare: Type.Number(),
    }),
    defence: Type.Optional(
      Type.Object({
        ...MeasurementFields,
        ablated: Type.Integer({ description: 'Neurons zeroed' }),
        lexical: Type.Optional(LexicalUseSchema),
      }),
    ),
    lexical: Type.Optional({ ...LexicalUseSchema, description: 'The lexical set the explanation used' }),
  },
  { title: 'AttackResult', description: 'A typographic attack (kind typographic-attack)' },
);

export const AttackProgressSchema = Type.Object(
  {
    done: Type.Integer({ description: 'Images attacked so far' }),
    total: Type.Integer(),
  },
  { title: 'AttackProgress', description: 'A typographic attack (kind typographic-attack)' },
);

const AttackQueued = Type.Object({
  jobId: Type.String({ description: 'GET /v1/jobs/{jobId} (or its /events) gives progress and the result' }),
  images: Type.Integer(),
  deduplicated: Type.Boolean({
    description: 'An identical attack was already queued or running: this is its job',
  }),
});

const InkSchema = Type.Union([
  Type.String({
    minLength: 1,
    maxLength: 40,
    description: `A colour name (${Object.keys(NAMED_COLOURS).join(', ')})`,
  }),
  Type.Object(
    {
      label: Type.String({ minLength: 1, maxLength: 100, description: 'The ink’s name as a label' }),
      colour: Colour,
    },
    { additionalProperties: false },
  ),
]);

const StroopBody = Type.Object(
  {
    words: Type.Array(Type.String({ minLength: 1, maxLength: 100 }), {
      minItems: 1,
      maxItems: TYPOGRAPHIC_LIMITS.maxStroopPairs,
      description: 'Colour words, each drawn in every ink',
    }),
    inks: Type.Array(InkSchema, {
      minItems: 1,
      maxItems: TYPOGRAPHIC_LIMITS.maxStroopPairs,
      description: `Inks: a colour name, or {label, colour} with colour ${COLOUR_FORMS}; words × inks ≤ ${TYPOGRAPHIC_LIMITS.maxStroopPairs}`,
    }),
    labels: Type.Optional({
      ...Labels,
      description: 'Labels to classify among; default: the words and the inks’ labels',
    }),
    templates: Type.Optional(Templates),
  },
  { additionalProperties: false },
);

const StroopResponse = Type.Object({
  labels: Type.Array(Type.String()),
  templates: Type.Array(Type.String()),
  pairs: Type.Array(
    Type.Object({
      word: Type.String(),
      ink: Type.String({ description: 'The ink’s label' }),
      colour: Type.String({ description: 'The ink as #rrggbb' }),
      congruent: Type.Boolean({ description: 'The word names its own ink' }),
      probabilities: Type.Array(Type.Number()),
      predicted: Type.String(),
      reads: Type.Union(
        [Type.Literal('word'), Type.Literal('ink'), Type.Literal('both'), Type.Literal('other')],
        {
          description:
            'word: the prediction is the word; ink: the ink; both: a congruent pair predicted right; other',
        },
      ),
    }),
  ),
  summary: Type.Object({
    incongruent: Type.Integer(),
    readsWord: { ...ProportionSchema, description: 'Incongruent pairs predicted as the word' },
    seesInk: { ...ProportionSchema, description: 'Incongruent pairs predicted as the ink' },
    congruentCorrect: ProportionSchema,
  }),
});

type AttackBodyType = Static<typeof AttackBody>;

/** How to attack more images than one request carries (the 413 over MAX_BODY_BYTES says it). */
export const ATTACK_MORE = `to attack more images, send them in several requests (up to ${TYPOGRAPHIC_LIMITS.maxImages} images each are answered at once), or upload them to a collection (POST /v1/collections/{id}/images) and attack a sample of it: {"collection": "<id>", "sample": {"count": n, "seed": 0}} (above ${TYPOGRAPHIC_LIMITS.maxImages} images a job, up to ${MAX_ATTACK_JOB_IMAGES})`;

const OptionsResponse = Type.Object(
  {
    fonts: Type.Array(Type.String(), { description: 'The fonts an attack may write with (font)' }),
    defaultFont: Type.String(),
    colours: Type.Array(Type.Object({ name: Type.String(), hex: Type.String({ description: '#rrggbb' }) }), {
      description: `The named colours (ink, box, Stroop inks); ${COLOUR_FORMS}`,
    }),
    defaults: Type.Object({
      size: Type.Number(),
      x: Type.Number(),
      y: Type.Number(),
      padding: Type.Number(),
      colour: Type.String(),
      templates: Type.Array(Type.String()),
      explain: Type.Integer(),
    }),
    limits: Type.Object({
      imagesPerRequest: Type.Integer({ description: 'Images answered at once; more become a job' }),
      imagesPerJob: Type.Integer({ description: 'Images of one attack job; more is a 413' }),
      requestBytes: Type.Integer({ description: 'The most one request with images may carry' }),
      minSize: Type.Number(),
      maxSize: Type.Number(),
      textCharacters: Type.Integer(),
      labels: Type.Integer(),
      templates: Type.Integer(),
      ablate: Type.Integer({ description: 'Neuron ids in one ablate list' }),
      explain: Type.Integer(),
      stroopPairs: Type.Integer(),
    }),
    neuronCount: Type.Integer({ description: 'Neuron ids go from 0 to neuronCount − 1' }),
    imageSize: Type.Integer({ description: 'S: the text is written on the model’s S × S input' }),
  },
  { additionalProperties: false },
);

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const readOriginal = async (collection: string, image: CollectionImage) => {
    try {
      return await app.collections.store.readImage(collection, image.sha256);
    } catch {
      throw notFound(`the original of image ${image.imageId} in collection "${collection}" is gone`);
    }
  };

  app.get(
    '/v1/typographic/options',
    {
      schema: {
        tags: ['typographic'],
        operationId: 'typographicOptions',
        summary: 'What an attack may choose: fonts, named colours, defaults and limits',
        response: withErrors({ 200: OptionsResponse }),
      },
    },
    async () => ({
      fonts: FONT_NAMES,
      defaultFont: DEFAULT_FONT,
      colours: Object.entries(NAMED_COLOURS).map(([name, rgb]) => ({ name, hex: hexOf(rgb) })),
      defaults: { ...PASTE_DEFAULTS, templates: DEFAULT_TEMPLATES, explain: DEFAULT_EXPLAIN },
      limits: {
        imagesPerRequest: TYPOGRAPHIC_LIMITS.maxImages,
        imagesPerJob: MAX_ATTACK_JOB_IMAGES,
        requestBytes: MAX_BODY_BYTES,
        minSize: PASTE_LIMITS.minSize,
        maxSize: PASTE_LIMITS.maxSize,
        textCharacters: PASTE_LIMITS.maxChars,
        labels: TYPOGRAPHIC_LIMITS.maxLabels,
        templates: TYPOGRAPHIC_LIMITS.maxTemplates,
        ablate: TYPOGRAPHIC_LIMITS.maxEdits,
        explain: TYPOGRAPHIC_LIMITS.maxExplainNeurons,
        stroopPairs: TYPOGRAPHIC_LIMITS.maxStroopPairs,
      },
      neuronCount: app.clip.neuronCount,
      imageSize: app.clip.imageSize,
    }),
  );

  app.post(
    '/v1/typographic/attack',
    {
      bodyLimit: MAX_BODY_BYTES,
      preValidation: multipartToBody,
      errorHandler: bodyTooLargeAdvice(ATTACK_MORE),
      schema: {
        tags: ['typographic'],
        operationId: 'typographicAttack',
        summary: 'Write a text on images and classify them before and after; explain it; defend by ablation',
        description:
          'The images are uploaded (image, images as base64, or the multipart file field "image", repeated for several) or taken from a collection (collection with imageIds, or a seeded sample). The text is written on the model’s S × S input (after the resize and centre crop). An image is eligible when its clean prediction (and its true label, when given) is not the target; the attack succeeds on it when the attacked prediction is the target. The summary gives the success rate among eligible images with a Wilson 95% interval, and the clean accuracy when trueLabels are given. With ablate, the same measurement with those neurons zeroed at the neuron layer (defence). The explanation lists the neurons whose contribution x_i·a_i to the attacked image’s winning logit changed most, and the share of the change carried by lexical neurons. Above ' +
          String(TYPOGRAPHIC_LIMITS.maxImages) +
          ' images the attack is a job (kind typographic-attack): 202 with its id; GET /v1/jobs/{id} gives its progress and this same result.',
        body: AttackBody,
        response: withErrors({ 200: AttackResponse, 202: AttackQueued }, [400, 404, 409, 413, 415, 429, 503]),
      },
    },
    async (request, reply) => {
      const body: AttackBodyType = request.body;
      if (body.image !== undefined && body.images !== undefined) {
        throw badRequest('send image (one) or images (several), not both');
      }
      const fields = body.images ?? (body.image !== undefined ? [body.image] : []);
      const { collection } = body;
      if (collection !== undefined && fields.length > 0) {
        throw badRequest('send uploaded images (image, images) or a collection’s (collection), not both');
      }
      if (collection === undefined) {
        if (body.imageIds !== undefined || body.sample !== undefined) {
          throw badRequest('imageIds and sample pick images of a collection: name it in collection');
        }
        if (fields.length === 0) {
          throw badRequest('send the image (image, or images for several), or name a collection');
        }
      } else {
        if ((body.imageIds === undefined) === (body.sample === undefined)) {
          throw badRequest(
            `collection "${collection.slice(0, 60)}": pick its images with imageIds or with sample (one of them)`,
          );
        }
        if (body.trueLabels !== undefined) {
          throw badRequest(
            'a collection’s true labels are its categories (those among labels): leave out trueLabels',
          );
        }
      }
      const count = body.sample?.count ?? body.imageIds?.length ?? fields.length;
      if (count > MAX_ATTACK_JOB_IMAGES) {
        throw payloadTooLarge(
          `${count} images: an attack takes at most ${MAX_ATTACK_JOB_IMAGES} images (above ${TYPOGRAPHIC_LIMITS.maxImages} it is a job)`,
        );
      }
      // A collection's images: checked and named now (the sample is drawn here, once).
      let picked: CollectionImage[] | undefined;
      let trueLabels: (string | null)[] | undefined = body.trueLabels;
      if (collection !== undefined) {
        picked = await collectionImages(
          app.collections,
          collection,
          body.imageIds ? { imageIds: body.imageIds } : { sample: body.sample! },
        );
        const categories = categoryLabels(picked, body.labels);
        trueLabels = categories.some((label) => label !== null) ? categories : undefined;
      }
      const colour = parseColour(body.colour ?? PASTE_DEFAULTS.colour, 'colour');
      const box = body.box !== undefined ? parseColour(body.box, 'box') : undefined;
      const paste = {
        text: body.text,
        font: body.font,
        size: body.size,
        x: body.x,
        y: body.y,
        padding: body.padding,
      };
      const settings = {
        trueLabels,
        labels: body.labels,
        templates: body.templates ?? DEFAULT_TEMPLATES,
        target: body.target,
        ablate: body.ablate,
        explain: body.explain ?? DEFAULT_EXPLAIN,
        returnImages: body.returnImages ?? false,
      };
      if (count <= TYPOGRAPHIC_LIMITS.maxImages) {
        const images = picked
          ? await Promise.all(picked.map((image) => readOriginal(collection!, image)))
          : fields.map((field) => imageBytes(request, field));
        const result = await app.typographic.attack({
          ...settings,
          images,
          paste: { ...paste, colour, box },
        });
        return picked ? { ...result, images: withCollectionImages(result.images, picked) } : result;
      }
      // A job: everything but the images is checked now, and the lexical set is resolved now, so
      // that whichever worker runs it measures with this service's set.
      const needsLexical = settings.ablate === 'lexical' || settings.explain > 0;
      const lexical = needsLexical ? await app.typographic.lexical() : undefined;
      await app.typographic.prepareAttack({ ...settings, paste: { ...paste, colour, box }, lexical }, count);
      const source = picked
        ? { collection: { id: collection!, images: picked } }
        : { images: fields.map((field) => imageBytes(request, field).toString('base64')) };
      const data = attackJobData({
        ...settings,
        ...source,
        paste: { ...paste, colour: [...colour], ...(box ? { box: [...box] } : {}) },
        ...(lexical ? { lexical } : {}),
      });
      const submitted = await app.jobs.submitJob(data, app.jobClient(request).owner);
      return reply
        .code(202)
        .send({ jobId: submitted.jobId, images: count, deduplicated: submitted.deduplicated });
    },
  );

  app.post(
    '/v1/typographic/stroop',
    {
      schema: {
        tags: ['typographic'],
        operationId: 'typographicStroop',
        summary: 'Stroop stimuli: does the model read the colour word or see its ink?',
        description:
          'Each word is drawn in each ink by the rasteriser (GET /v1/raster?text=…&ink=…) and classified among the labels (zero-shot, prompt ensemble). A pair reads the word when the prediction is the word, sees the ink when it is the ink’s label.',
        body: StroopBody,
        response: withErrors({ 200: StroopResponse }, [400, 413, 415]),
      },
    },
    async (request) => {
      const { words, templates = DEFAULT_TEMPLATES } = request.body;
      const inks: StroopInk[] = request.body.inks.map((ink, i) => {
        if (typeof ink === 'string') {
          const colour = namedColour(ink);
          if (!colour) {
            throw badRequest(
              `inks[${i}] "${ink.slice(0, 40)}" is not a colour name (${Object.keys(NAMED_COLOURS).join(', ')}); give {label, colour} for another colour, with ${COLOUR_FORMS}`,
            );
          }
          return { label: ink.trim().toLowerCase(), colour };
        }
        return { label: ink.label, colour: parseColour(ink.colour, `inks[${i}].colour`) };
      });
      const labels = request.body.labels ?? [...new Set([...words, ...inks.map((ink) => ink.label)])];
      return app.typographic.stroop({ words, inks, labels, templates });
    },
  );
};

export default routes;
