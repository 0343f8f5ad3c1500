/**
 * Image collections of the loaded model: create, list, delete, add images (staged on disk, then
 * indexed by a build job), and the neuron queries (top images, distribution) on what is indexed.
 *
 * Builds are jobs of the one job API (`collection-build`, build-job.ts): app.jobs runs them (with
 * Redis, sharded over every worker), or without one given (the CLI, benchmarks) an in-process queue
 * of the service's own. One per collection at a time, across every replica on the same DATA_DIR. A
 * build's state and job id live in the collection's manifest, so any replica answers for it.
 * Uploads that arrive while a build runs join it (its total grows). A cancelled build keeps what it
 * had indexed and drops the uploads it had not; one interrupted by a shutdown resumes where it
 * stopped (resumeAll at the next start, or another worker).
 */
import { createHash } from 'node:crypto';
import { createCache } from '../cache/index.js';
import type { BoundedDecode } from '../clip/encoders.js';
import type { PreprocessSpec } from '../clip/image.js';
import { badRequest, conflict, HttpError, notFound, payloadTooLarge, RetryLaterError } from '../errors.js';
import { JobQueue, isTerminal } from '../jobs/queue.js';
import type { JobView } from '../jobs/types.js';
import { MemoryBackend } from '../jobs/memory-backend.js';
import { JobRegistry } from '../jobs/registry.js';
import { buildHash, CollectionBuilds, shardSizeOf } from './build-job.js';
import type { CollectionModel } from './builder.js';
import { NeuronHeatmaps } from './heatmap.js';
import { checkCollectionCount, checkOwnerTotals, SERVICE_OWNER } from './quotas.js';
import { CollectionReader } from './reader.js';
import { CollectionSearch, type SearchHit, type SearchQuery } from './retrieval.js';
import type { CollectionSettings } from './settings.js';
import { distribution, quantileBands, rocAuc, topK, type Distribution } from './stats.js';
import {
  COLLECTION_FORMAT,
  collectionIdOf,
  emptyBuild,
  FILES,
  type BuildState,
  type BuildStatus,
  type CollectionManifest,
  type CollectionStore,
  type ImageMeta,
  type PendingEntry,
} from './store.js';

export interface ServiceModel extends CollectionModel {
  readonly sha256: string;
  readonly neuronGrid: readonly [number, number];
}

export interface Upload {
  name: string;
  bytes: Uint8Array;
  category: string | null;
  caption: string | null;
}

export interface Client {
  owner: string;
  admin: boolean;
}

export interface Logger {
  warn(object: object, message: string): void;
  info(object: object, message: string): void;
}

/**
 * Where builds run: a job queue that runs `collection-build` jobs with these builds' processors (the
 * app's, whose plugin registers them), or, when not given, a queue of the service's own.
 */
export interface BuildJobs {
  queue: JobQueue;
  builds: CollectionBuilds;
}

const ACTIVE: readonly BuildState[] = ['running', 'queued'];
/** Retry-After (s) for a collection whose first images are on their way. */
const NOT_INDEXED_RETRY_S = 2;
/**
 * A collection younger than this, idle with nothing staged, may still be being filled by the service
 * (the probe, whose originals are written before any upload is staged, here or by another replica).
 */
export const INSTALLING_MS = 60_000;
/** Failed reads of the build's job in a row after which settled() gives up (throws). */
const SETTLED_MAX_FAILURES = 20;

export interface RankedImage {
  imageId: number;
  name: string;
  category: string | null;
  caption: string | null;
  value: number;
  /** Cell of the neuron's maximum in the image's h×w grid (by=max). */
  position?: { x: number; y: number };
}

export type RankBy = 'mean' | 'max';

export interface CategoryNeuron {
  neuron: number;
  /** Mean spatial-mean activation over the category's images. */
  meanIn: number;
  /** … over the other images (null when every image is in the category). */
  meanRest: number | null;
  difference: number | null;
  /** The difference over the pooled standard deviation (null when it is 0 or undefined). */
  d: number | null;
  /**
   * The area under the ROC curve of the neuron's activation as a detector of the category: the
   * chance that an image of it activates the neuron more than another image (null without others).
   */
  auc: number | null;
}

/** The query parts of a service (retrieval.ts, heatmap.ts); made from the settings when not given. */
export interface QueryParts {
  search?: CollectionSearch;
  heatmaps?: NeuronHeatmaps;
}

export class CollectionService {
  private readonly jobs: BuildJobs;
  /** True when the build queue is the service's own (closed by stop()). */
  private readonly ownQueue: boolean;
  readonly search: CollectionSearch;
  readonly heatmaps: NeuronHeatmaps;

  constructor(
    readonly store: CollectionStore,
    private readonly model: ServiceModel,
    private readonly spec: PreprocessSpec,
    /** Decoding under the process's one bound (Encoders.decode; boundedDecode for the CLI, benchmarks). */
    private readonly decode: BoundedDecode,
    readonly settings: CollectionSettings,
    private readonly log: Logger,
    parts: QueryParts = {},
    jobs?: BuildJobs,
  ) {
    this.ownQueue = jobs === undefined;
    this.jobs = jobs ?? this.ownJobs();
    this.search = parts.search ?? new CollectionSearch({ memoryBytes: settings.searchBytes });
    this.heatmaps = parts.heatmaps ?? new NeuronHeatmaps(model, spec, decode);
  }

  /** An in-process queue that runs this service's builds (the CLI, benchmarks, tests). */
  private ownJobs(): BuildJobs {
    const builds = new CollectionBuilds({
      store: this.store,
      model: this.model,
      spec: this.spec,
      decode: this.decode,
      batchSize: this.settings.batchSize,
      shardSize: shardSizeOf(),
      log: this.log,
    });
    const registry = new JobRegistry();
    registry.register('collection-build', builds.buildProcessor);
    const cache = createCache({ ttlSeconds: 3600, maxEntries: 16, logger: this.log as never });
    const queue = new JobQueue(new MemoryBackend(registry.dispatch), cache, this.model.sha256);
    queue.whenStopped('collection-build', (view) => builds.stopped(buildCollectionOf(view), view.id));
    return { queue, builds };
  }

  /** Creates a collection owned by `owner` (an admin key is not held to the per-owner count). */
  async create(name: string, owner: string, admin = false): Promise<CollectionManifest> {
    const id = collectionIdOf(name);
    if (id === '')
      throw badRequest('name must contain at least one letter or digit (the id is made from them)');
    const [h, w] = this.model.neuronGrid;
    const manifest: CollectionManifest = {
      format: COLLECTION_FORMAT,
      id,
      name,
      owner,
      createdAt: new Date().toISOString(),
      model: {
        sha256: this.model.sha256,
        neurons: this.model.neuronCount,
        embedDim: this.model.embedDim,
        grid: [h, w],
      },
      images: 0,
      bytes: 0,
      metaBytes: 0,
      thumbBytes: 0,
      pendingBytes: 0,
      categories: [],
      categoryCounts: [],
      build: emptyBuild(),
      columnBlock: this.settings.columnBlock,
      columnBlocks: 0,
    };
    await checkCollectionCount(this.store, this.settings.limits, owner, admin);
    if (!(await this.store.create(manifest)))
      throw conflict(`a collection with the id "${id}" exists already`);
    return manifest;
  }

  /** The manifest of a collection of this model, or 404. */
  async get(id: string): Promise<CollectionManifest> {
    const manifest = await this.store.manifest(id);
    if (!manifest) throw notFound(`collection "${id}" not found`);
    if (manifest.model.sha256 !== this.model.sha256) {
      throw conflict(
        `collection "${id}" was built with another model (sha256 ${manifest.model.sha256.slice(0, 12)}…)`,
      );
    }
    return manifest;
  }

  async list(): Promise<CollectionManifest[]> {
    const manifests = await Promise.all((await this.store.ids()).map((id) => this.store.manifest(id)));
    return manifests.filter(
      (manifest): manifest is CollectionManifest =>
        manifest !== undefined && manifest.model.sha256 === this.model.sha256,
    );
  }

  /** Uploads staged and not yet indexed. */
  async pendingCount(manifest: CollectionManifest): Promise<number> {
    return (await this.store.readPending(manifest.id, manifest.pendingBytes)).length;
  }

  async remove(id: string, client: Client): Promise<void> {
    const manifest = await this.get(id);
    if (!client.admin && manifest.owner !== client.owner) {
      throw new HttpError(
        403,
        `collection "${id}" was created by another client: only its owner (or an admin key) may delete it`,
      );
    }
    if (manifest.build.jobId !== null && ACTIVE.includes(manifest.build.state)) {
      await this.stopBuild(id, manifest.build.jobId);
      // A build of this process stops at its next batch; the folder goes after it.
      for (let i = 0; i < 200 && (await this.jobs.builds.liveBuild(id)) !== undefined; i++) await sleep(25);
    }
    if (!(await this.store.remove(id))) throw notFound(`collection "${id}" not found`);
  }

  /**
   * Stages uploads (bytes under images/, entries in pending.ndjson) after checking the limits, and
   * starts (or joins) the build. Resolves with the build's job id and how many uploads are pending.
   */
  async addImages(
    id: string,
    uploads: readonly Upload[],
    client?: Client,
  ): Promise<{ jobId: string; pending: number }> {
    const manifest = await this.get(id);
    // A client (a request) adds to its own collections, an admin key to any; the service's own
    // callers (the CLI, the probe) pass none and are not limited per owner.
    if (client && !client.admin && manifest.owner !== client.owner) {
      throw new HttpError(
        403,
        `collection "${id}" was created by another client: only its owner (or an admin key) may add images to it`,
      );
    }
    const { limits } = this.settings;
    if (uploads.length === 0) {
      throw badRequest(
        'send one or more files in the field "image", or one .tar, .tar.gz or .zip in the field "archive" (an empty archive adds nothing)',
      );
    }
    const pending = await this.store.readPending(id, manifest.pendingBytes);
    const images = manifest.images + pending.length + uploads.length;
    if (images > limits.maxImages) {
      throw payloadTooLarge(
        `collection "${id}" would hold ${images} images (${manifest.images} indexed, ${pending.length} pending, ${uploads.length} sent); the limit is ${limits.maxImages} (COLLECTION_MAX_IMAGES)`,
      );
    }
    const sent = uploads.reduce((sum, upload) => sum + upload.bytes.byteLength, 0);
    const bytes = manifest.bytes + pending.reduce((sum, { entry }) => sum + entry.bytes, 0) + sent;
    if (bytes > limits.maxBytes) {
      throw payloadTooLarge(
        `collection "${id}" would hold ${bytes} bytes of images; the limit is ${limits.maxBytes} bytes (COLLECTION_MAX_BYTES)`,
      );
    }
    if (client) {
      await checkOwnerTotals(this.store, limits, manifest.owner, client.admin, {
        images: uploads.length,
        bytes: sent,
      });
    }
    const entries: PendingEntry[] = [];
    for (const upload of uploads) {
      const sha256 = createHash('sha256').update(upload.bytes).digest('hex');
      await this.store.putImage(id, sha256, upload.bytes);
      entries.push({
        name: upload.name,
        category: upload.category,
        caption: upload.caption,
        sha256,
        bytes: upload.bytes.byteLength,
      });
    }
    await this.store.appendPending(id, entries);
    const jobId = await this.startBuild(id);
    return { jobId, pending: pending.length + entries.length };
  }

  /**
   * Starts the build of a collection's pending uploads, or joins the one that runs (here, on another
   * replica, or on a worker); resolves with the id of the build job that will index them. The
   * collection's owner follows the job (DELETE /v1/jobs/{id} by the owner or an admin cancels it).
   * `preferredId`: the job id of an interrupted build that this one resumes.
   */
  async startBuild(id: string, preferredId?: string): Promise<string> {
    const manifest = await this.get(id);
    for (let attempt = 0; ; attempt++) {
      // A running build plans the uploads staged before this (under the same lock) before it completes.
      const live = await this.jobs.builds.join(id);
      if (live !== undefined) return live;
      const { jobId, deduplicated } = await this.jobs.queue.submitJob(
        { kind: 'collection-build', collection: id, hash: buildHash(id) },
        manifest.owner,
        preferredId,
      );
      // The job joined may be a build that has just completed or failed (its job not yet ended:
      // it would not take these uploads): once it has ended, a new one takes them.
      if (deduplicated && (await this.jobs.builds.ended(id, jobId)) && attempt < 600) {
        await sleep(50);
        continue;
      }
      // The build's job id and total are in the manifest (for every replica) before its first step.
      await this.jobs.builds.announce(id, jobId);
      return jobId;
    }
  }

  /** Stops a build: its job (the queue's stop hook drops what it had not indexed), or its manifest. */
  private async stopBuild(id: string, jobId: string): Promise<void> {
    const view = await this.jobs.queue.stopJob(jobId).catch(() => undefined);
    // A job this queue does not know (another replica's without Redis, or one lost): the manifest
    // says cancelled, and whoever builds it stops at its next batch.
    if (!view || view.kind !== 'collection-build') await this.jobs.builds.stopped(id, jobId);
  }

  /** Stops a collection's build (cancel): what it indexed stays, the uploads not yet indexed are dropped. */
  async cancel(id: string, client: Client): Promise<BuildStatus> {
    const manifest = await this.get(id);
    if (!client.admin && manifest.owner !== client.owner) {
      throw new HttpError(
        403,
        `collection "${id}" was created by another client: only its owner (or an admin key) may cancel its build`,
      );
    }
    const { jobId, state } = manifest.build;
    if (jobId === null || !ACTIVE.includes(state)) return manifest.build;
    await this.stopBuild(id, jobId);
    return (await this.get(id)).build;
  }

  /**
   * At start: resumes the builds that were interrupted (they keep their job id where the queue
   * allows) and those with uploads left (uploads of a crashed replica).
   */
  async resumeAll(): Promise<string[]> {
    const resumed: string[] = [];
    for (const manifest of await this.list()) {
      const interrupted = ACTIVE.includes(manifest.build.state);
      if (interrupted || (await this.store.hasStaged(manifest))) {
        await this.startBuild(manifest.id, interrupted ? (manifest.build.jobId ?? undefined) : undefined);
        resumed.push(manifest.id);
      }
    }
    return resumed;
  }

  /**
   * Shutdown: with a queue of its own, this process's builds stop between batches and are left to
   * resume; the app's queue hands them back when it closes (plugins/jobs.ts).
   */
  async stop(): Promise<void> {
    if (this.ownQueue) await this.jobs.queue.close();
    await this.search.close();
  }

  /**
   * The view of a collection's build job, if this service's queue knows it (GET /v1/jobs/{id}): its
   * progress counts the uploads of shards in flight too, where the manifest counts committed ones.
   */
  async buildJob(id: string): Promise<JobView | undefined> {
    const { jobId } = (await this.get(id)).build;
    return jobId === null ? undefined : this.jobs.queue.get(jobId).catch(() => undefined);
  }

  /**
   * Waits until the collection's build job has ended, no process builds it, and every upload staged
   * is indexed or dropped (tests, the CLI). Uploads staged while it polls, whose build is not yet
   * submitted (addImages stages, then submits), or staged by an upload that failed before it
   * submitted its build, are built: it submits their build (or joins the one being submitted).
   */
  async settled(id: string): Promise<void> {
    let failures = 0;
    for (;;) {
      const manifest = await this.store.manifest(id);
      if (!manifest) return;
      const { jobId, state } = manifest.build;
      let view: JobView | undefined;
      try {
        view = jobId === null ? undefined : await this.jobs.queue.get(jobId);
        failures = 0;
      } catch (error) {
        // The job store did not answer (Redis under load or down): not a sign that the build ended.
        if (++failures >= SETTLED_MAX_FAILURES) throw error;
        await sleep(250);
        continue;
      }
      const active = view !== undefined && !isTerminal(view);
      if (active || (await this.jobs.builds.liveBuild(id)) !== undefined) {
        await sleep(25);
        continue;
      }
      // Read again: a build announced (or ended) since the first read is waited for.
      const now = await this.store.manifest(id);
      if (!now) return;
      if (now.build.jobId !== jobId || now.build.state !== state) continue;
      // Uploads staged that no build took: a submission under way, or one that failed.
      if (!ACTIVE.includes(state) && (await this.store.hasStaged(now))) {
        await this.startBuild(id);
        continue;
      }
      return;
    }
  }

  private checkNeuron(neuron: number): void {
    const count = this.model.neuronCount;
    if (neuron >= count) throw badRequest(`neuron ${neuron} is out of range (0 to ${count - 1})`);
  }

  private async indexed(id: string): Promise<CollectionReader> {
    const manifest = await this.get(id);
    await this.requireIndexed(manifest);
    return new CollectionReader(this.store, manifest);
  }

  /**
   * Throws when a collection has no indexed image yet: a 503 with Retry-After while images are
   * on their way (a build queued or running, uploads staged for the next one, or the service
   * installing a collection of its own: the probe in the first seconds after a start), else a 409
   * that says to add images.
   */
  async requireIndexed(manifest: CollectionManifest): Promise<void> {
    if (manifest.images > 0) return;
    const { id, build } = manifest;
    const retry = (why: string) =>
      new RetryLaterError(
        503,
        `collection "${id}" has no indexed images yet: ${why}; retry shortly (GET /v1/collections/${id} shows the build)`,
        NOT_INDEXED_RETRY_S,
      );
    if (ACTIVE.includes(build.state)) throw retry(`its build is ${build.state}`);
    if (await this.store.hasStaged(manifest)) throw retry('images are staged for its build');
    // The service's own collections (the probe) are filled by the service as it starts: their
    // originals are written before any upload is staged.
    if (manifest.owner === SERVICE_OWNER && Date.now() - Date.parse(manifest.createdAt) < INSTALLING_MS) {
      throw retry('the service is installing its images');
    }
    throw conflict(
      `collection "${id}" has no indexed images yet (build: ${build.state}); add images with POST /v1/collections/${id}/images`,
    );
  }

  async image(id: string, imageId: number): Promise<{ reader: CollectionReader; meta: ImageMeta }> {
    const manifest = await this.get(id);
    const reader = new CollectionReader(this.store, manifest);
    const meta = await reader.meta(imageId);
    if (!meta) {
      throw notFound(
        `image ${imageId} not found in collection "${id}" (ids 0 to ${manifest.images - 1} are indexed)`,
      );
    }
    return { reader, meta };
  }

  /** The neuron's map over an indexed image, laid over it (heatmap.ts, cached); `max` is the map's maximum. */
  async heatmap(
    id: string,
    imageId: number,
    neuron: number,
  ): Promise<{ png: Buffer; max: number; cached: boolean }> {
    this.checkNeuron(neuron);
    const { meta } = await this.image(id, imageId);
    let bytes: Buffer;
    try {
      bytes = await this.store.readImage(id, meta.sha256);
    } catch {
      throw notFound(`the original of image ${imageId} in collection "${id}" is gone`);
    }
    return this.heatmaps.render(bytes, meta.sha256, neuron);
  }

  async topImages(
    neuron: number,
    id: string,
    options: { k: number; by: RankBy; bins: number; perBin: number },
  ): Promise<{
    manifest: CollectionManifest;
    top: RankedImage[];
    quantiles: { from: number; to: number; images: RankedImage[] }[];
  }> {
    this.checkNeuron(neuron);
    const reader = await this.indexed(id);
    const values = await reader.column(options.by === 'max' ? FILES.maxima : FILES.means, neuron);
    const positions = options.by === 'max' ? await reader.argmaxColumn(neuron) : undefined;
    const top = topK(values, options.k);
    const bands = options.bins > 0 ? quantileBands(values, options.bins, options.perBin) : [];
    const ids = [...top, ...bands.flatMap((band) => band.ids)];
    const metas = await reader.metas(ids);
    const [, w] = reader.manifest.model.grid;
    const ranked = (imageId: number, i: number): RankedImage => {
      const meta = metas[i] as ImageMeta;
      const cell = positions?.[imageId];
      return {
        imageId,
        name: meta.name,
        category: meta.category,
        caption: meta.caption,
        value: values[imageId],
        ...(cell !== undefined ? { position: { x: cell % w, y: Math.floor(cell / w) } } : {}),
      };
    };
    let at = top.length;
    const quantiles = bands.map((band) => ({
      from: band.from,
      to: band.to,
      images: band.ids.map((imageId) => ranked(imageId, at++)),
    }));
    return { manifest: reader.manifest, top: top.map(ranked), quantiles };
  }

  /** The top `k` indexed images of a collection for a query (retrieval.ts). */
  async retrieve(
    id: string,
    query: SearchQuery,
    k: number,
  ): Promise<{ manifest: CollectionManifest; results: SearchHit[] }> {
    const reader = await this.indexed(id);
    return { manifest: reader.manifest, results: await this.search.search(reader, query, k) };
  }

  /** Images by cosine between their embeddings and a query embedding (a text's), highest first. */
  searchByEmbedding(id: string, embedding: Float32Array, k: number) {
    return this.retrieve(id, { by: 'embedding', embedding }, k);
  }

  /**
   * The neurons most selective for a category: per neuron, the mean spatial-mean activation of
   * the category's images and of the rest, and their standardised difference (the difference over
   * the pooled standard deviation, Cohen's d), highest d first. One pass over means.f32.
   */
  async categoryNeurons(
    id: string,
    category: string,
    k: number,
  ): Promise<{ manifest: CollectionManifest; inCategory: number; rest: number; neurons: CategoryNeuron[] }> {
    const reader = await this.indexed(id);
    const { categories, model } = reader.manifest;
    const code = categories.indexOf(category);
    if (code < 0) {
      const known =
        categories.length > 0
          ? categories
              .slice(0, 20)
              .map((name) => `"${name}"`)
              .join(', ')
          : 'none';
      throw notFound(`category "${category}" not found in collection "${id}" (categories: ${known})`);
    }
    const C = model.neurons;
    const codes = await reader.categoryCodes();
    const sum = [new Float64Array(C), new Float64Array(C)];
    const squares = [new Float64Array(C), new Float64Array(C)];
    const counts = [0, 0];
    await reader.scan(FILES.means, (rows, start, count) => {
      for (let r = 0; r < count; r++) {
        const side = codes[start + r] === code ? 0 : 1;
        counts[side]++;
        const s = sum[side];
        const q = squares[side];
        for (let c = 0; c < C; c++) {
          const v = rows[r * C + c];
          s[c] += v;
          q[c] += v * v;
        }
      }
    });
    const [n1, n0] = counts;
    const neurons: CategoryNeuron[] = [];
    for (let c = 0; c < C; c++) {
      const mean1 = sum[0][c] / n1;
      const mean0 = n0 > 0 ? sum[1][c] / n0 : NaN;
      const var1 = n1 > 1 ? Math.max(0, (squares[0][c] - n1 * mean1 * mean1) / (n1 - 1)) : 0;
      const var0 = n0 > 1 ? Math.max(0, (squares[1][c] - n0 * mean0 * mean0) / (n0 - 1)) : 0;
      const pooled = n1 + n0 > 2 ? Math.sqrt(((n1 - 1) * var1 + (n0 - 1) * var0) / (n1 + n0 - 2)) : 0;
      const difference = mean1 - mean0;
      const d = pooled > 0 ? difference / pooled : null;
      neurons.push({
        neuron: c,
        meanIn: mean1,
        meanRest: n0 > 0 ? mean0 : null,
        difference: n0 > 0 ? difference : null,
        d,
        auc: null,
      });
    }
    const key = (n: CategoryNeuron) => n.d ?? n.difference ?? n.meanIn;
    neurons.sort((a, b) => key(b) - key(a) || a.neuron - b.neuron);
    const chosen = neurons.slice(0, k);
    // The AUC of the neurons returned, from their columns: read from the column-major blocks when
    // they hold most rows, else gathered in one more pass over means.f32.
    const { images, columnBlock = 0, columnBlocks = 0 } = reader.manifest;
    let columns: Float32Array[];
    if (2 * columnBlock * columnBlocks >= images) {
      columns = [];
      for (const neuron of chosen) columns.push(await reader.column(FILES.means, neuron.neuron));
    } else {
      columns = chosen.map(() => new Float32Array(images));
      await reader.scan(FILES.means, (rows, start, count) => {
        for (let r = 0; r < count; r++) {
          chosen.forEach((neuron, j) => (columns[j][start + r] = rows[r * C + neuron.neuron]));
        }
      });
    }
    chosen.forEach((neuron, j) => (neuron.auc = rocAuc(columns[j], (i) => codes[i] === code)));
    return { manifest: reader.manifest, inCategory: n1, rest: n0, neurons: chosen };
  }

  async distribution(
    neuron: number,
    id: string,
    options: { by: RankBy; bins: number; buckets: number; threshold: number },
  ): Promise<{ manifest: CollectionManifest; distribution: Distribution }> {
    this.checkNeuron(neuron);
    const reader = await this.indexed(id);
    const values = await reader.column(options.by === 'max' ? FILES.maxima : FILES.means, neuron);
    const codes = await reader.categoryCodes();
    return {
      manifest: reader.manifest,
      distribution: distribution(values, codes, reader.manifest.categories, options),
    };
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The collection of a build job's view. */
export function buildCollectionOf(view: { progress: object }): string {
  return (view.progress as { collection?: string }).collection ?? '';
}
