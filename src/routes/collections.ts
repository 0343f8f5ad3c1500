/**
 * Image collections (src/collections/): create, list, inspect, delete; add images by multipart
 * upload (202 with the build job); an image's metadata and thumbnail; and per neuron, its top
 * images in a collection and its activation distribution there.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { badRequest, HttpError, payloadTooLarge, unsupportedMediaType } from '../errors.js';
import { MAX_BODY_BYTES, MAX_IMAGE_BYTES } from '../limits.js';
import { readArchive } from '../collections/archive.js';
import { addFolderImages } from '../collections/directory.js';
import { IMAGE_EXTENSIONS, labelEntries, readFolder, resolveUnderRoot } from '../collections/folder.js';
import type { SearchQuery } from '../collections/retrieval.js';
import type { Upload } from '../collections/service.js';
import { COLLECTION_ID_PATTERN, type CollectionManifest, type ImageMeta } from '../collections/store.js';
import { imageBytes, multipartToBody } from './image-input.js';
import { ImageField, NeuronIdParams, withErrors } from './schemas.js';
import { withAllowed } from './validation.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

const CollectionId = withAllowed(
  Type.String({
    pattern: COLLECTION_ID_PATTERN,
    maxLength: 64,
    description: 'Collection id (made from its name)',
  }),
  'collection id must be 1 to 64 lower-case letters, digits and inner hyphens',
);
const CollectionParams = Type.Object({ id: CollectionId });
const ImageParams = Type.Object({
  id: CollectionId,
  imageId: withAllowed(
    Type.String({ pattern: '^[0-9]{1,9}$', description: 'Image id in the collection, an integer from 0' }),
    'image id must be an integer from 0',
  ),
});

const CreateBody = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 100,
      pattern: '[A-Za-z0-9]',
      description: 'Name; the id is made from it (lower case, other characters as hyphens)',
    }),
  },
  { additionalProperties: false },
);

const BuildSchema = Type.Object({
  jobId: Nullable(
    Type.String({ description: 'The build job (one per build; a resumed build keeps its id)' }),
  ),
  state: Type.Union(
    ['idle', 'queued', 'running', 'completed', 'failed', 'cancelled'].map((state) => Type.Literal(state)),
    { description: '"queued": interrupted by a shutdown, resumes at the next start' },
  ),
  done: Type.Integer({ description: 'Uploads taken by this build (indexed, duplicate or skipped)' }),
  total: Type.Integer({ description: 'Uploads this build knows of' }),
  resumedFrom: Type.Integer({ description: 'Images indexed when the build (or its resumption) started' }),
  startedAt: Nullable(Type.String()),
  finishedAt: Nullable(Type.String()),
  error: Type.Optional(Type.String()),
  skipped: Type.Array(Type.Object({ name: Type.String(), reason: Type.String() }), {
    description: 'Uploads that were not images (the first 100)',
  }),
  duplicates: Type.Array(Type.Object({ name: Type.String(), imageId: Type.Integer() }), {
    description: 'Uploads whose bytes were already in the collection (the first 100), stored once',
  }),
});

const CollectionSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  createdAt: Type.String(),
  images: Type.Integer({ description: 'Images indexed (queries use these, and only these)' }),
  pending: Type.Integer({ description: 'Uploads waiting to be indexed' }),
  complete: Type.Boolean({ description: 'True when nothing is pending: every upload is indexed' }),
  bytes: Type.Integer({ description: 'Bytes of the indexed images' }),
  categories: Type.Array(Type.Object({ name: Type.String(), count: Type.Integer() })),
  build: BuildSchema,
});
const CollectionList = Type.Object({ collections: Type.Array(CollectionSchema) });

const UploadBody = Type.Object(
  {
    image: Type.Array(Type.String({ description: 'An image file (PNG, JPEG, WebP or GIF), multipart' }), {
      description: 'Files in the field "image" (one or more, unless an archive is sent)',
    }),
    archive: Type.Optional(
      Type.String({
        description:
          'One .tar, .tar.gz or .zip of images: each file’s folder is its category (ImageFolder), else the "category" field before it; files that are not images are skipped and listed in the build report; links, entries leaving the archive’s folder, and archives expanding past COLLECTION_ARCHIVE_BYTES are refused',
      }),
    ),
    category: Type.Array(Nullable(Type.String({ maxLength: 100 })), {
      description:
        'A "category" field applies to the files after it, until the next one (an empty value: none)',
    }),
    caption: Type.Array(Nullable(Type.String({ maxLength: 1000 })), {
      description: 'A "caption" field applies to the next file only',
    }),
  },
  { additionalProperties: false },
);
const UploadResponse = Type.Object({
  collection: Type.String(),
  jobId: Type.String({
    description:
      'The build job that indexes these images: GET /v1/jobs/{id} and its SSE stream /v1/jobs/{id}/events follow it (images done / total, skipped files, images/s), DELETE /v1/jobs/{id} cancels it; GET /v1/collections/{id} names it too',
  }),
  accepted: Type.Integer({
    description: 'Files taken from this request (an archive’s files counted one by one)',
  }),
  pending: Type.Integer({ description: 'Uploads of the collection now waiting to be indexed' }),
});

const DirectoryBody = Type.Object(
  {
    directory: Type.String({
      minLength: 1,
      maxLength: 4096,
      description: 'A folder on the server: relative to COLLECTIONS_ROOT, or an absolute path inside it',
    }),
  },
  { additionalProperties: false },
);
const DirectoryResponse = Type.Object({
  collection: Type.String(),
  jobId: Type.String({ description: 'The build that indexes these images' }),
  accepted: Type.Integer({ description: 'Images read from the folder and staged' }),
  pending: Type.Integer({ description: 'Uploads of the collection now waiting to be indexed' }),
  manifest: Type.Boolean({ description: 'True: the folder’s manifest.csv listed the images' }),
  ignored: Type.Integer({ description: 'Files passed over: not images by their extension, or links' }),
});

const ImageSchema = Type.Object({
  id: Type.Integer(),
  collection: Type.String(),
  name: Type.String(),
  category: Nullable(Type.String()),
  caption: Nullable(Type.String()),
  sha256: Type.String(),
  bytes: Type.Integer(),
  width: Type.Integer(),
  height: Type.Integer(),
  addedAt: Type.String(),
  thumbnailUrl: Type.String(),
});

const By = Type.Union([Type.Literal('mean'), Type.Literal('max')], {
  default: 'mean',
  description:
    '"mean": the spatial mean of the neuron map (the article’s activation); "max": its maximum cell',
});
const CollectionQuery = withAllowed(
  Type.String({ pattern: COLLECTION_ID_PATTERN, maxLength: 64, description: 'Collection id' }),
  'collection must be a collection id: 1 to 64 lower-case letters, digits and inner hyphens',
);
const TopImagesQuery = Type.Object(
  {
    collection: CollectionQuery,
    k: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 12, description: 'Top images' })),
    by: Type.Optional(By),
    bins: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 20,
        default: 5,
        description: 'Quantile bands of examples (0: none)',
      }),
    ),
    perBin: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 20, default: 3, description: 'Examples per band' }),
    ),
  },
  { additionalProperties: false },
);
const RankedImage = Type.Object({
  imageId: Type.Integer(),
  name: Type.String(),
  category: Nullable(Type.String()),
  caption: Nullable(Type.String()),
  value: Type.Number({ description: 'The activation (spatial mean or maximum)' }),
  position: Type.Optional(
    Type.Object(
      { x: Type.Integer(), y: Type.Integer() },
      { description: 'Cell of the maximum in the h×w grid' },
    ),
  ),
  thumbnailUrl: Type.String(),
});
const TopImagesResponse = Type.Object({
  neuron: Type.Integer(),
  collection: Type.String(),
  by: By,
  images: Type.Integer({ description: 'Images ranked (those indexed)' }),
  complete: Type.Boolean({ description: 'False while uploads are still being indexed' }),
  grid: Type.Array(Type.Integer(), { description: 'h, w of the neuron maps' }),
  top: Type.Array(RankedImage),
  quantiles: Type.Array(
    Type.Object({
      from: Type.Number({ description: 'Lower quantile of the band' }),
      to: Type.Number({ description: 'Upper quantile of the band' }),
      images: Type.Array(RankedImage),
    }),
    { description: 'Examples evenly spaced within bands of equal counts, from the top band down' },
  ),
});

const DistributionQuery = Type.Object(
  {
    collection: CollectionQuery,
    by: Type.Optional(By),
    bins: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 200, default: 20, description: 'Histogram bins' }),
    ),
    buckets: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 50,
        default: 5,
        description: 'Activation buckets of the category shares',
      }),
    ),
    threshold: Type.Optional(
      Type.Number({ default: 0, description: 'An image "fires" when its activation is above this' }),
    ),
  },
  { additionalProperties: false },
);
const DistributionResponse = Type.Object({
  neuron: Type.Integer(),
  collection: Type.String(),
  by: By,
  complete: Type.Boolean(),
  count: Type.Integer({ description: 'Images (indexed)' }),
  min: Type.Number(),
  max: Type.Number(),
  mean: Type.Number(),
  threshold: Type.Number(),
  firing: Type.Number({ description: 'Share of images whose activation is above the threshold' }),
  quantiles: Type.Array(Type.Object({ q: Type.Number(), value: Type.Number() })),
  histogram: Type.Object({
    edges: Type.Array(Type.Number(), { description: 'bins + 1 edges, minimum to maximum' }),
    counts: Type.Array(Type.Integer()),
  }),
  categories: Type.Array(
    Type.Object({ category: Type.String(), count: Type.Integer(), mean: Type.Number() }),
    { description: 'Mean activation per category ("(none)": images without one), highest first' },
  ),
  buckets: Type.Array(
    Type.Object({
      from: Type.Number(),
      to: Type.Number(),
      count: Type.Integer(),
      shares: Type.Array(Type.Object({ category: Type.String(), share: Type.Number() })),
    }),
    { description: 'Equal-width activation buckets, lowest first: the share of each category in each' },
  ),
});

const SearchK = Type.Integer({ minimum: 1, maximum: 200, default: 12, description: 'Images returned' });
const SearchText = Type.String({
  minLength: 1,
  maxLength: 2000,
  pattern: '\\S',
  description: 'Images for a text: cosine of the CLIP image and text embeddings',
});
const SEARCH_MODES_GET = 'text, neuron or image (an image id of the collection)';
const SEARCH_MODES_POST =
  'text, image (a file or base64), imageId, neuron, direction (C numbers over the neurons) or embedding (D numbers)';
const SearchQuery = Type.Object(
  {
    text: Type.Optional(SearchText),
    neuron: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'Images by this neuron’s activation (the spatial mean, or with by=max its maximum)',
      }),
    ),
    image: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          'Images like this image of the collection (its id): cosine of the stored image embeddings (the image itself first)',
      }),
    ),
    by: Type.Optional(By),
    k: Type.Optional(SearchK),
  },
  {
    additionalProperties: false,
    description: `Exactly one of ${SEARCH_MODES_GET}`,
  },
);
const SearchBody = Type.Object(
  {
    text: Type.Optional(SearchText),
    image: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Images like this image: PNG, JPEG, WebP or GIF bytes, base64 (or the multipart file field "image"); cosine of the image embeddings',
      }),
    ),
    imageId: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Images like this image of the collection (its id)' }),
    ),
    neuron: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Images by this neuron’s activation (by: mean or max)' }),
    ),
    by: Type.Optional(By),
    direction: Type.Optional(
      Type.Array(Type.Number(), {
        minItems: 1,
        maxItems: 65536,
        description:
          'A direction over the C neurons (an emotion’s composition, W·t, …), scored against each image’s neuron means (the spatial means): see score',
      }),
    ),
    embedding: Type.Optional(
      Type.Array(Type.Number(), {
        minItems: 1,
        maxItems: 65536,
        description: 'A query in the D-dimensional embedding space: cosine with each image embedding',
      }),
    ),
    score: Type.Optional(
      Type.Union([Type.Literal('dot'), Type.Literal('cosine')], {
        default: 'dot',
        description:
          'For a direction: "dot" (default), Σ_c direction_c · mean_c, the direction’s raw contribution; "cosine", that over both norms',
      }),
    ),
    k: Type.Optional(SearchK),
  },
  { additionalProperties: false, description: `Exactly one of ${SEARCH_MODES_POST}` },
);
const SearchMode = Type.Union(
  ['text', 'image', 'neuron', 'direction', 'embedding'].map((mode) => Type.Literal(mode)),
  { description: 'What the images were ranked by' },
);
const SearchMeasure = Type.Union(
  ['cosine', 'dot', 'mean', 'max'].map((measure) => Type.Literal(measure)),
  {
    description:
      'What a score is: "cosine" of embeddings (text, image, embedding) or of a direction and the means; "dot", a direction’s dot product with the means; "mean" or "max", the neuron’s activation',
  },
);
const SearchResponse = Type.Object({
  collection: Type.String(),
  mode: SearchMode,
  measure: SearchMeasure,
  text: Type.Optional(Type.String({ description: 'The text (mode text)' })),
  imageId: Type.Optional(Type.Integer({ description: 'The collection’s image searched by (mode image)' })),
  neuron: Type.Optional(Type.Integer({ description: 'The neuron (mode neuron)' })),
  images: Type.Integer({ description: 'Images searched (those indexed)' }),
  complete: Type.Boolean({ description: 'False while uploads are still being indexed' }),
  results: Type.Array(
    Type.Object({
      imageId: Type.Integer(),
      name: Type.String(),
      category: Nullable(Type.String()),
      caption: Nullable(Type.String()),
      score: Type.Number({ description: 'See measure' }),
      thumbnailUrl: Type.String(),
    }),
    { description: 'Highest score first; ties by the smaller image id' },
  ),
});

const CategoryParams = Type.Object({
  id: CollectionId,
  category: Type.String({ minLength: 1, maxLength: 100, description: 'A category of the collection' }),
});
const CategoryNeuronsQuery = Type.Object(
  {
    k: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 500, default: 20, description: 'Neurons returned' }),
    ),
  },
  { additionalProperties: false },
);
const CategoryNeuronsResponse = Type.Object({
  collection: Type.String(),
  category: Type.String(),
  inCategory: Type.Integer({ description: 'Images in the category' }),
  rest: Type.Integer({ description: 'Other images' }),
  complete: Type.Boolean(),
  neurons: Type.Array(
    Type.Object({
      neuron: Type.Integer(),
      meanIn: Type.Number({ description: 'Mean spatial-mean activation over the category' }),
      meanRest: Nullable(Type.Number({ description: '… over the other images' })),
      difference: Nullable(Type.Number()),
      d: Nullable(
        Type.Number({ description: 'The difference over the pooled standard deviation (Cohen’s d)' }),
      ),
      auc: Nullable(
        Type.Number({
          description:
            'Area under the ROC curve of the activation as a detector of the category: the chance that an image of the category activates the neuron more than another image (ties count ½); null when every image is in the category',
        }),
      ),
    }),
    { description: 'Highest d first (the most selective for the category), each with its AUC' },
  ),
});

const BinaryImage = Type.Unsafe<Buffer>({ type: 'string', format: 'binary', description: 'PNG thumbnail' });

const WHAT_TO_SEND =
  'send multipart/form-data with one or more files in the field "image" (curl -F image=@a.png -F image=@b.png), each optionally after "category" and "caption" fields, or one .tar, .tar.gz or .zip in the field "archive"';

const uploadsOf = new WeakMap<FastifyRequest, Upload[]>();

const thumbnailUrl = (collection: string, imageId: number) =>
  `/v1/collections/${collection}/images/${imageId}/thumbnail`;

/** A heatmap PNG, with its maximum and whether the cache had it (hit) or it was computed (miss). */
const sendHeatmap = (reply: FastifyReply, heatmap: { png: Buffer; max: number; cached: boolean }) =>
  reply
    .type('image/png')
    .header('cache-control', 'public, max-age=86400')
    .header('x-neuron-max', String(heatmap.max))
    .header('x-heatmap-cache', heatmap.cached ? 'hit' : 'miss')
    .send(heatmap.png);

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const { limits } = app.collections.settings;

  const view = async (manifest: CollectionManifest): Promise<Static<typeof CollectionSchema>> => {
    const pending = await app.collections.pendingCount(manifest);
    return {
      id: manifest.id,
      name: manifest.name,
      createdAt: manifest.createdAt,
      images: manifest.images,
      pending,
      complete: pending === 0,
      bytes: manifest.bytes,
      categories: manifest.categories.map((name, i) => ({ name, count: manifest.categoryCounts[i] })),
      build: manifest.build,
    };
  };

  /** Reads the multipart parts: files in "image", "category" (sticky) and "caption" (next file) fields. */
  const readUploads = async (request: FastifyRequest): Promise<void> => {
    if (!request.isMultipart())
      throw unsupportedMediaType(`images are uploaded as multipart: ${WHAT_TO_SEND}`);
    if (!/;\s*boundary=("[^"]+"|[^;\s]+)/i.test(request.headers['content-type'] ?? '')) {
      throw badRequest(`the multipart content type has no boundary; ${WHAT_TO_SEND}`);
    }
    const uploads: Upload[] = [];
    const imageFiles: Upload[] = [];
    let archive: string | undefined;
    let category: string | null = null;
    let caption: string | null = null;
    let total = 0;
    try {
      const parts = request.parts({
        limits: {
          files: limits.uploadFiles + 1,
          // An archive may be as large as the whole upload; images are checked one by one below.
          fileSize: Math.max(MAX_IMAGE_BYTES, limits.uploadBytes),
          fields: 2 * limits.uploadFiles + 2,
          parts: 3 * limits.uploadFiles + 2,
          fieldSize: 4096,
        },
      });
      for await (const part of parts) {
        if (part.type === 'file' && part.fieldname === 'archive') {
          if (archive !== undefined) throw badRequest('send at most one file in the field "archive"');
          archive = part.filename || 'archive';
          const bytes = await part.toBuffer();
          total += bytes.byteLength;
          if (total > limits.uploadBytes) {
            throw payloadTooLarge(
              `the upload's files exceed ${limits.uploadBytes} bytes (COLLECTION_UPLOAD_BYTES)`,
            );
          }
          const entries = readArchive(bytes, { maxBytes: limits.archiveBytes, maxEntries: limits.maxImages });
          // One rule with folders (collections/folder.ts): a top-level manifest.csv, else each folder.
          for (const entry of labelEntries(entries)) {
            uploads.push({
              name: entry.name,
              bytes: entry.bytes,
              category: entry.category ?? category,
              caption: entry.caption,
            });
          }
        } else if (part.type === 'file') {
          if (part.fieldname !== 'image') {
            throw badRequest(
              `unexpected file field "${part.fieldname}"; images go in the field "image", an archive in "archive"`,
            );
          }
          if (imageFiles.length >= limits.uploadFiles) {
            throw payloadTooLarge(
              `more than ${limits.uploadFiles} files in one upload (COLLECTION_UPLOAD_FILES)`,
            );
          }
          const bytes = await part.toBuffer();
          const name = part.filename || `image-${imageFiles.length}`;
          if (bytes.byteLength > MAX_IMAGE_BYTES) {
            throw payloadTooLarge(
              `image "${name}" is ${bytes.byteLength} bytes; the limit is ${MAX_IMAGE_BYTES} bytes`,
            );
          }
          total += bytes.byteLength;
          if (total > limits.uploadBytes) {
            throw payloadTooLarge(
              `the upload's files exceed ${limits.uploadBytes} bytes (COLLECTION_UPLOAD_BYTES)`,
            );
          }
          const upload = { name, bytes, category, caption };
          uploads.push(upload);
          imageFiles.push(upload);
          caption = null;
        } else if (part.fieldname === 'category' || part.fieldname === 'caption') {
          const value = typeof part.value === 'string' ? part.value.trim() : '';
          if (part.fieldname === 'category') category = value === '' ? null : value;
          else caption = value === '' ? null : value;
        } else {
          throw badRequest(
            `unexpected field "${part.fieldname}"; allowed: image (files), archive (one file), category, caption`,
          );
        }
      }
    } catch (error) {
      const status = (error as { statusCode?: unknown }).statusCode;
      if (typeof status === 'number') {
        // @fastify/multipart's limit errors are 413s whose message names no limit.
        if (status === 413 && !/COLLECTION_|limit is/.test((error as Error).message)) {
          throw payloadTooLarge(
            `the upload is over a limit: at most ${limits.uploadFiles} image files (COLLECTION_UPLOAD_FILES) of at most ${MAX_IMAGE_BYTES} bytes each, and one archive, ${limits.uploadBytes} bytes in all (COLLECTION_UPLOAD_BYTES)`,
          );
        }
        throw error;
      }
      throw badRequest(`the multipart body could not be read (${(error as Error).message}); ${WHAT_TO_SEND}`);
    }
    uploadsOf.set(request, uploads);
    request.body = {
      image: imageFiles.map((upload) => upload.name),
      category: imageFiles.map((upload) => upload.category),
      caption: imageFiles.map((upload) => upload.caption),
      ...(archive !== undefined ? { archive } : {}),
    };
  };

  app.post(
    '/v1/collections',
    {
      schema: {
        tags: ['collections'],
        summary: 'Create an image collection',
        body: CreateBody,
        response: withErrors({ 201: CollectionSchema }, [400, 403, 409, 415]),
      },
    },
    async (request, reply) => {
      const client = app.jobClient(request);
      const manifest = await app.collections.create(request.body.name, client.owner, client.admin);
      return reply.code(201).send(await view(manifest));
    },
  );

  app.get(
    '/v1/collections',
    {
      schema: {
        tags: ['collections'],
        summary: 'The collections of the loaded model',
        response: withErrors({ 200: CollectionList }),
      },
    },
    async () => ({ collections: await Promise.all((await app.collections.list()).map(view)) }),
  );

  app.get(
    '/v1/collections/:id',
    {
      schema: {
        tags: ['collections'],
        summary: 'A collection: counts, categories, build state and job',
        params: CollectionParams,
        response: withErrors({ 200: CollectionSchema }, [400, 404, 409]),
      },
    },
    async (request) => view(await app.collections.get(request.params.id)),
  );

  app.delete(
    '/v1/collections/:id',
    {
      schema: {
        tags: ['collections'],
        summary: 'Delete a collection (its owner or an admin key); a running build stops',
        params: CollectionParams,
        response: withErrors({ 204: Type.Null() }, [400, 403, 404, 409]),
      },
    },
    async (request, reply) => {
      await app.collections.remove(request.params.id, app.jobClient(request));
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/v1/collections/:id/build',
    {
      schema: {
        tags: ['collections'],
        summary:
          'Cancel the running build (its owner or an admin key), as DELETE /v1/jobs/{id} of its job does: what it indexed stays, uploads not yet indexed are dropped',
        params: CollectionParams,
        response: withErrors({ 200: BuildSchema }, [400, 403, 404, 409]),
      },
    },
    async (request) => app.collections.cancel(request.params.id, app.jobClient(request)),
  );

  app.post(
    '/v1/collections/:id/images',
    {
      bodyLimit: limits.uploadBytes + 1024 * 1024,
      preValidation: readUploads,
      schema: {
        tags: ['collections'],
        summary: 'Add images (multipart): answers 202 with the build job that indexes them',
        consumes: ['multipart/form-data'],
        params: CollectionParams,
        body: UploadBody,
        response: withErrors({ 202: UploadResponse }, [400, 403, 404, 409, 413, 415]),
      },
    },
    async (request, reply) => {
      const uploads = uploadsOf.get(request) ?? [];
      const { jobId, pending } = await app.collections.addImages(
        request.params.id,
        uploads,
        app.jobClient(request),
      );
      return reply
        .code(202)
        .send({ collection: request.params.id, jobId, accepted: uploads.length, pending });
    },
  );

  app.post(
    '/v1/collections/:id/directory',
    {
      config: { admin: true },
      schema: {
        tags: ['collections', 'admin'],
        summary: 'Add the images of a folder on the server, under COLLECTIONS_ROOT (admin key)',
        description:
          'Reads a folder under the server’s COLLECTIONS_ROOT (a relative path is taken below it) and adds its images like an upload: a manifest.csv at its top (file,category,caption) lists them, else every image file is added and the name of the folder holding it is its category (ImageFolder). Paths outside COLLECTIONS_ROOT, also through links, are refused (403); links inside the folder are not followed. Answers 202 with the build job once the files are staged.',
        params: CollectionParams,
        body: DirectoryBody,
        response: withErrors({ 202: DirectoryResponse }, [400, 401, 403, 404, 409, 413]),
      },
    },
    async (request, reply) => {
      const { root } = app.collections.settings;
      if (root === null) {
        throw new HttpError(
          403,
          'adding images from server folders is off: set COLLECTIONS_ROOT to the folder under which they may be read',
        );
      }
      const { id } = request.params;
      await app.collections.get(id);
      const dir = await resolveUnderRoot(root, request.body.directory, 'COLLECTIONS_ROOT');
      const listing = await readFolder(dir, { root, rootName: 'COLLECTIONS_ROOT' });
      if (listing.images.length === 0) {
        throw badRequest(
          `no images in "${request.body.directory}" (files ending in ${IMAGE_EXTENSIONS.join(' ')}, or those its manifest.csv lists)`,
        );
      }
      const result = await addFolderImages(app.collections, id, listing.images, {
        client: app.jobClient(request),
      });
      return reply.code(202).send({
        collection: id,
        jobId: result.jobId,
        accepted: result.accepted,
        pending: result.pending,
        manifest: listing.manifest,
        ignored: listing.ignored,
      });
    },
  );

  const imageView = (collection: string, meta: ImageMeta): Static<typeof ImageSchema> => ({
    id: meta.id,
    collection,
    name: meta.name,
    category: meta.category,
    caption: meta.caption,
    sha256: meta.sha256,
    bytes: meta.bytes,
    width: meta.width,
    height: meta.height,
    addedAt: meta.addedAt,
    thumbnailUrl: thumbnailUrl(collection, meta.id),
  });

  app.get(
    '/v1/collections/:id/images/:imageId',
    {
      schema: {
        tags: ['collections'],
        summary: 'An indexed image: name, category, caption, sha256, size',
        params: ImageParams,
        response: withErrors({ 200: ImageSchema }, [400, 404, 409]),
      },
    },
    async (request) => {
      const { meta } = await app.collections.image(request.params.id, Number(request.params.imageId));
      return imageView(request.params.id, meta);
    },
  );

  app.get(
    '/v1/collections/:id/images/:imageId/thumbnail',
    {
      schema: {
        tags: ['collections'],
        summary: 'An indexed image’s thumbnail (PNG, at most 64 px a side)',
        params: ImageParams,
        response: withErrors({ 200: BinaryImage }, [400, 404, 409]),
      },
    },
    async (request, reply) => {
      const { reader, meta } = await app.collections.image(request.params.id, Number(request.params.imageId));
      const png = await reader.thumbnail(meta);
      return reply.type('image/png').header('cache-control', 'public, max-age=86400').send(png);
    },
  );

  app.get(
    '/v1/collections/:id/images/:imageId/heatmap',
    {
      schema: {
        tags: ['collections', 'neurons'],
        summary:
          'A neuron’s spatial map over an indexed image (PNG: the model’s S × S crop, the map in red, scaled by its maximum; computed on demand)',
        params: ImageParams,
        querystring: Type.Object(
          {
            neuron: withAllowed(
              Type.String({
                pattern: '^[0-9]{1,9}$',
                description: 'Neuron (channel) index, an integer from 0',
              }),
              'neuron must be an integer from 0',
            ),
          },
          { additionalProperties: false },
        ),
        response: withErrors({ 200: BinaryImage }, [400, 404, 409]),
      },
    },
    async (request, reply) => {
      const heatmap = await app.collections.heatmap(
        request.params.id,
        Number(request.params.imageId),
        Number(request.query.neuron),
      );
      return sendHeatmap(reply, heatmap);
    },
  );

  app.post(
    '/v1/neurons/:id/heatmap',
    {
      bodyLimit: MAX_BODY_BYTES,
      preValidation: multipartToBody,
      schema: {
        tags: ['neurons'],
        summary:
          'A neuron’s spatial map over an uploaded image (PNG: the model’s S × S crop, the map in red, scaled by its maximum)',
        description:
          'The image as base64 JSON ({"image": …}) or the multipart file field "image". The answer’s x-neuron-max header is the map’s maximum; x-heatmap-cache says whether it came from the cache (hit) or was computed (miss).',
        params: NeuronIdParams,
        body: Type.Object({ image: ImageField }, { additionalProperties: false }),
        response: withErrors({ 200: BinaryImage }, [400, 413, 415]),
      },
    },
    async (request, reply) => {
      const bytes = imageBytes(request, request.body.image);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const heatmap = await app.collections.heatmaps.render(bytes, sha256, Number(request.params.id));
      return sendHeatmap(reply, heatmap);
    },
  );

  type SearchAnswer = Static<typeof SearchResponse>;
  type Mode = Pick<SearchAnswer, 'mode' | 'measure' | 'text' | 'imageId' | 'neuron'>;

  /** Runs one search and answers in the response's shape. */
  const answerSearch = async (
    collection: string,
    mode: Mode,
    query: SearchQuery,
    k: number,
  ): Promise<SearchAnswer> => {
    const result = await app.collections.retrieve(collection, query, k);
    const pending = await app.collections.pendingCount(result.manifest);
    return {
      collection,
      ...mode,
      images: result.manifest.images,
      complete: pending === 0,
      results: result.results.map((hit) => ({ ...hit, thumbnailUrl: thumbnailUrl(collection, hit.imageId) })),
    };
  };

  /** The one mode of a search request, or a 400 naming the modes allowed. */
  const oneMode = <T extends object>(given: T, modes: readonly (keyof T)[], allowed: string): keyof T => {
    const present = modes.filter((mode) => given[mode] !== undefined);
    if (present.length !== 1) {
      throw badRequest(
        present.length === 0
          ? `give one of ${allowed}`
          : `give only one of ${allowed} (got ${present.join(', ')})`,
      );
    }
    if ('by' in given && given.by !== undefined && present[0] !== 'neuron') {
      throw badRequest('by (mean or max) applies to a neuron search only');
    }
    return present[0];
  };

  app.get(
    '/v1/collections/:id/search',
    {
      schema: {
        tags: ['collections'],
        summary: 'Images of a collection by text, by a neuron, or like one of its images',
        description:
          'Exactly one of: text (cosine of the CLIP image and text embeddings), neuron (its activation: the spatial mean, or with by=max its maximum), image (an image id of the collection: cosine of the stored image embeddings). POST the same path for an uploaded image, a direction over the neurons, or an embedding.',
        params: CollectionParams,
        querystring: SearchQuery,
        response: withErrors({ 200: SearchResponse }, [400, 404, 409, 503]),
      },
    },
    async (request) => {
      const { id } = request.params;
      const { text, neuron, image, by = 'mean', k = 12 } = request.query;
      const mode = oneMode(request.query, ['text', 'neuron', 'image'], SEARCH_MODES_GET);
      if (mode === 'text' && text !== undefined) {
        const [embedding] = await app.encoders.textEmbeddings([text]);
        return answerSearch(id, { mode: 'text', measure: 'cosine', text }, { by: 'embedding', embedding }, k);
      }
      if (mode === 'neuron' && neuron !== undefined) {
        return answerSearch(
          id,
          { mode: 'neuron', measure: by, neuron },
          { by: 'neuron', neuron, activation: by },
          k,
        );
      }
      const imageId = image as number;
      return answerSearch(id, { mode: 'image', measure: 'cosine', imageId }, { by: 'image', imageId }, k);
    },
  );

  app.post(
    '/v1/collections/:id/search',
    {
      bodyLimit: MAX_BODY_BYTES,
      preValidation: multipartToBody,
      schema: {
        tags: ['collections'],
        summary:
          'Images of a collection like an uploaded image, along a direction over the neurons, or by any mode',
        description:
          'JSON (or multipart with the file field "image") with exactly one of: text, image (base64 bytes, or the multipart file): cosine of the image embeddings; imageId; neuron (by: mean or max); direction: C numbers over the neurons (an emotion’s composition, W·t), scored against each image’s neuron means by the dot product (score: "dot", default) or the cosine ("cosine"); embedding: D numbers, cosine with each image embedding.',
        params: CollectionParams,
        body: SearchBody,
        response: withErrors({ 200: SearchResponse }, [400, 404, 409, 413, 415, 503]),
      },
    },
    async (request) => {
      const { id } = request.params;
      const body = request.body;
      const k = body.k ?? 12;
      const mode = oneMode(
        body,
        ['text', 'image', 'imageId', 'neuron', 'direction', 'embedding'],
        SEARCH_MODES_POST,
      );
      if (body.score !== undefined && mode !== 'direction') {
        throw badRequest('score (dot or cosine) applies to a direction search only');
      }
      switch (mode) {
        case 'text': {
          const text = body.text as string;
          const [embedding] = await app.encoders.textEmbeddings([text]);
          return answerSearch(
            id,
            { mode: 'text', measure: 'cosine', text },
            { by: 'embedding', embedding },
            k,
          );
        }
        case 'image': {
          // The collection is checked before the image is decoded and encoded.
          await app.collections.get(id);
          const { embedding } = await app.encoders.imageEncoding(imageBytes(request, body.image as string));
          return answerSearch(id, { mode: 'image', measure: 'cosine' }, { by: 'embedding', embedding }, k);
        }
        case 'imageId': {
          const imageId = body.imageId as number;
          return answerSearch(id, { mode: 'image', measure: 'cosine', imageId }, { by: 'image', imageId }, k);
        }
        case 'neuron': {
          const neuron = body.neuron as number;
          const by = body.by ?? 'mean';
          return answerSearch(
            id,
            { mode: 'neuron', measure: by, neuron },
            { by: 'neuron', neuron, activation: by },
            k,
          );
        }
        case 'direction': {
          const score = body.score ?? 'dot';
          return answerSearch(
            id,
            { mode: 'direction', measure: score },
            { by: 'direction', direction: Float32Array.from(body.direction as number[]), score },
            k,
          );
        }
        default:
          return answerSearch(
            id,
            { mode: 'embedding', measure: 'cosine' },
            { by: 'embedding', embedding: Float32Array.from(body.embedding as number[]) },
            k,
          );
      }
    },
  );

  app.get(
    '/v1/collections/:id/categories/:category/neurons',
    {
      schema: {
        tags: ['collections', 'neurons'],
        summary:
          'The neurons most selective for a category of a collection (mean in it vs. the rest: Cohen’s d, and the AUC)',
        params: CategoryParams,
        querystring: CategoryNeuronsQuery,
        response: withErrors({ 200: CategoryNeuronsResponse }, [400, 404, 409, 503]),
      },
    },
    async (request) => {
      const { id, category } = request.params;
      const result = await app.collections.categoryNeurons(id, category, request.query.k ?? 20);
      const pending = await app.collections.pendingCount(result.manifest);
      return {
        collection: id,
        category,
        inCategory: result.inCategory,
        rest: result.rest,
        complete: pending === 0,
        neurons: result.neurons,
      };
    },
  );

  app.get(
    '/v1/neurons/:id/top-images',
    {
      schema: {
        tags: ['neurons', 'collections'],
        summary:
          'The images of a collection that activate a neuron most, and examples from each quantile band',
        params: NeuronIdParams,
        querystring: TopImagesQuery,
        response: withErrors({ 200: TopImagesResponse }, [400, 404, 409, 503]),
      },
    },
    async (request) => {
      const neuron = Number(request.params.id);
      const { collection, k = 12, by = 'mean', bins = 5, perBin = 3 } = request.query;
      const result = await app.collections.topImages(neuron, collection, { k, by, bins, perBin });
      const withUrl = <T extends { imageId: number }>(image: T) => ({
        ...image,
        thumbnailUrl: thumbnailUrl(collection, image.imageId),
      });
      const pending = await app.collections.pendingCount(result.manifest);
      return {
        neuron,
        collection,
        by,
        images: result.manifest.images,
        complete: pending === 0,
        grid: result.manifest.model.grid,
        top: result.top.map(withUrl),
        quantiles: result.quantiles.map((band) => ({ ...band, images: band.images.map(withUrl) })),
      };
    },
  );

  app.get(
    '/v1/neurons/:id/distribution',
    {
      schema: {
        tags: ['neurons', 'collections'],
        summary:
          'A neuron’s activations over a collection: histogram, quantiles, share firing, mean per category, category shares per activation bucket',
        params: NeuronIdParams,
        querystring: DistributionQuery,
        response: withErrors({ 200: DistributionResponse }, [400, 404, 409, 503]),
      },
    },
    async (request) => {
      const neuron = Number(request.params.id);
      const { collection, by = 'mean', bins = 20, buckets = 5, threshold = 0 } = request.query;
      const result = await app.collections.distribution(neuron, collection, { by, bins, buckets, threshold });
      const pending = await app.collections.pendingCount(result.manifest);
      return { neuron, collection, by, complete: pending === 0, ...result.distribution };
    },
  );
};

export default routes;
