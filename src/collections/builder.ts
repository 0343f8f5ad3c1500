/**
 * Indexes a collection's pending uploads: each image is decoded and preprocessed (as the image
 * routes do it), run through the visual trunk (the neuron maps [C, h, w]) and the head (the
 * embedding), and reduced to each neuron's spatial mean, maximum and the cell of the maximum.
 *
 * Pipeline: while the trunk runs one batch (on the model's inference thread), the next batch is
 * decoded and thumbnailed (sharp, on libuv's threads), so decoding overlaps the model.
 *
 * Resumable: a batch's rows are written at their positions and then the manifest counts them and
 * moves its pending cursor past the batch's uploads. An interrupted build (shutdown, crash) resumes
 * at the first upload the manifest has not consumed, and rewrites any rows written past its count.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { decodeImage, pixelValuesOf, type PreprocessSpec } from '../clip/image.js';
import { spatialMeans } from '../clip/spatial-means.js';
import {
  FILES,
  NO_CATEGORY,
  float32Bytes,
  readAt,
  uint16Bytes,
  uint32Bytes,
  writeAt,
  type CollectionManifest,
  type CollectionStore,
  type ImageMeta,
  type PendingEntry,
} from './store.js';
import { open } from 'node:fs/promises';
import { writeColumnBlocks } from './columns.js';

export const THUMBNAIL_SIZE = 64;
/** Entries kept in a build report's lists of skipped uploads and duplicates. */
export const REPORT_LIMIT = 100;

/** What the builder needs of a ClipModel. */
export interface CollectionModel {
  readonly neuronCount: number;
  readonly embedDim: number;
  neuronMaps(pixelRows: readonly Float32Array[]): Promise<Float32Array[]>;
  imageEmbeddingsFromNeurons(neuronRows: readonly Float32Array[]): Promise<Float32Array[]>;
}

export interface BuildOptions {
  store: CollectionStore;
  id: string;
  model: CollectionModel;
  spec: PreprocessSpec;
  maxPixels: number;
  batchSize: number;
  signal: AbortSignal;
  /** Called after each committed batch with the manifest as written. */
  onBatch?: (manifest: CollectionManifest) => void;
  /** Called between batches (e.g. to refresh the build lock). */
  heartbeat?: () => Promise<void>;
}

type Prepared =
  | {
      kind: 'image';
      entry: PendingEntry;
      end: number;
      pixels: Float32Array;
      width: number;
      height: number;
      thumb: Buffer;
    }
  | { kind: 'duplicate'; entry: PendingEntry; end: number }
  | { kind: 'skipped'; entry: PendingEntry; end: number; reason: string };

export class BuildAborted extends Error {
  constructor() {
    super('the collection build was stopped');
    this.name = 'BuildAborted';
  }
}

/** Per-neuron spatial maximum and the cell where it is (the first, on ties). */
export function spatialMaxima(maps: Float32Array, channels: number): { max: Float32Array; at: Uint16Array } {
  const cells = maps.length / channels;
  const max = new Float32Array(channels);
  const at = new Uint16Array(channels);
  for (let c = 0; c < channels; c++) {
    let best = -Infinity;
    let where = 0;
    for (let i = 0; i < cells; i++) {
      const value = maps[c * cells + i];
      if (value > best) {
        best = value;
        where = i;
      }
    }
    max[c] = best;
    at[c] = where;
  }
  return { max, at };
}

async function existingShas(
  store: CollectionStore,
  manifest: CollectionManifest,
): Promise<Map<string, number>> {
  const shas = new Map<string, number>();
  if (manifest.images === 0) return shas;
  const handle = await open(store.file(manifest.id, FILES.shas), 'r');
  try {
    const bytes = await readAt(handle, 0, manifest.images * 32);
    for (let i = 0; i < manifest.images; i++) {
      const sha = bytes.subarray(i * 32, (i + 1) * 32).toString('hex');
      if (!shas.has(sha)) shas.set(sha, i);
    }
  } finally {
    await handle.close();
  }
  return shas;
}

/**
 * Indexes every pending upload (including those that arrive while it runs); resolves with the final
 * manifest. Throws BuildAborted when the signal stops it (between batches: nothing half-written is
 * counted). The caller holds the collection's build lock.
 */
export async function buildCollection(options: BuildOptions): Promise<CollectionManifest> {
  const { store, id, model, signal } = options;
  const C = model.neuronCount;
  const D = model.embedDim;
  let manifest = (await store.manifest(id)) as CollectionManifest;
  const shas = await existingShas(store, manifest);
  const scheduled = new Set<string>(shas.keys());

  const prepare = async (entries: { entry: PendingEntry; end: number }[]): Promise<Prepared[]> =>
    Promise.all(
      entries.map(async ({ entry, end }): Promise<Prepared> => {
        if (scheduled.has(entry.sha256)) return { kind: 'duplicate', entry, end };
        scheduled.add(entry.sha256);
        try {
          const bytes = await store.readImage(id, entry.sha256);
          if (createHash('sha256').update(bytes).digest('hex') !== entry.sha256) {
            return { kind: 'skipped', entry, end, reason: 'the stored bytes do not match their sha256' };
          }
          const decoded = await decodeImage(bytes, { maxPixels: options.maxPixels });
          const pixels = pixelValuesOf(decoded, options.spec);
          const thumb = await sharp(decoded.data, {
            raw: { width: decoded.width, height: decoded.height, channels: 3 },
          })
            .resize(THUMBNAIL_SIZE, THUMBNAIL_SIZE, { fit: 'inside', withoutEnlargement: true })
            .png()
            .toBuffer();
          return { kind: 'image', entry, end, pixels, width: decoded.width, height: decoded.height, thumb };
        } catch (error) {
          scheduled.delete(entry.sha256);
          return { kind: 'skipped', entry, end, reason: (error as Error).message };
        }
      }),
    );

  const commit = async (items: Prepared[], maps: Float32Array[], embeddings: Float32Array[]) => {
    const images = items.filter((item) => item.kind === 'image');
    const k = images.length;
    const means = new Float32Array(k * C);
    const maxima = new Float32Array(k * C);
    const argmax = new Uint16Array(k * C);
    const embeds = new Float32Array(k * D);
    const codes = new Uint32Array(k);
    const shaBytes = Buffer.alloc(k * 32);
    const offsets = Buffer.alloc(k * 8);
    const lines: Buffer[] = [];
    const thumbs: Buffer[] = [];
    const categories = [...manifest.categories];
    const counts = [...manifest.categoryCounts];
    let metaBytes = manifest.metaBytes;
    let thumbBytes = manifest.thumbBytes;
    let bytes = manifest.bytes;
    const now = new Date().toISOString();
    images.forEach((item, i) => {
      const row = manifest.images + i;
      means.set(spatialMeans(maps[i], C), i * C);
      const { max, at } = spatialMaxima(maps[i], C);
      maxima.set(max, i * C);
      argmax.set(at, i * C);
      embeds.set(embeddings[i], i * D);
      const { category } = item.entry;
      let code = NO_CATEGORY;
      if (category !== null) {
        code = categories.indexOf(category);
        if (code < 0) {
          code = categories.length;
          categories.push(category);
          counts.push(0);
        }
        counts[code]++;
      }
      codes[i] = code;
      Buffer.from(item.entry.sha256, 'hex').copy(shaBytes, i * 32);
      const meta: ImageMeta = {
        id: row,
        name: item.entry.name,
        category,
        caption: item.entry.caption,
        sha256: item.entry.sha256,
        bytes: item.entry.bytes,
        width: item.width,
        height: item.height,
        thumb: [thumbBytes, item.thumb.length],
        addedAt: now,
      };
      const line = Buffer.from(JSON.stringify(meta) + '\n');
      offsets.writeDoubleLE(metaBytes, i * 8);
      lines.push(line);
      thumbs.push(item.thumb);
      metaBytes += line.length;
      thumbBytes += item.thumb.length;
      bytes += item.entry.bytes;
      shas.set(item.entry.sha256, row);
    });
    const n = manifest.images;
    if (k > 0) {
      await Promise.all([
        writeAt(store.file(id, FILES.means), float32Bytes(means), n * C * 4),
        writeAt(store.file(id, FILES.maxima), float32Bytes(maxima), n * C * 4),
        writeAt(store.file(id, FILES.argmax), uint16Bytes(argmax), n * C * 2),
        writeAt(store.file(id, FILES.embeddings), float32Bytes(embeds), n * D * 4),
        writeAt(store.file(id, FILES.categories), uint32Bytes(codes), n * 4),
        writeAt(store.file(id, FILES.shas), shaBytes, n * 32),
        writeAt(store.file(id, FILES.metaIndex), offsets, n * 8),
        writeAt(store.file(id, FILES.meta), Buffer.concat(lines), manifest.metaBytes),
        writeAt(store.file(id, FILES.thumbs), Buffer.concat(thumbs), manifest.thumbBytes),
      ]);
    }
    const build = { ...manifest.build };
    build.skipped = [...build.skipped];
    build.duplicates = [...build.duplicates];
    for (const item of items) {
      if (item.kind === 'skipped' && build.skipped.length < REPORT_LIMIT) {
        build.skipped.push({ name: item.entry.name, reason: item.reason });
      }
      if (item.kind === 'duplicate') {
        const existing = shas.get(item.entry.sha256);
        if (existing === undefined) {
          if (build.skipped.length < REPORT_LIMIT) {
            build.skipped.push({
              name: item.entry.name,
              reason: 'the same bytes as an upload that is not an image',
            });
          }
        } else if (build.duplicates.length < REPORT_LIMIT) {
          build.duplicates.push({ name: item.entry.name, imageId: existing });
        }
      }
    }
    build.done += items.length;
    manifest = {
      ...manifest,
      images: n + k,
      bytes,
      metaBytes,
      thumbBytes,
      pendingBytes: items[items.length - 1].end,
      categories,
      categoryCounts: counts,
      build,
    };
    await store.writeManifest(manifest);
    const block = manifest.columnBlock ?? 0;
    if (block > 0 && Math.floor(manifest.images / block) > (manifest.columnBlocks ?? 0)) {
      manifest = await writeColumnBlocks(store, manifest);
    }
    options.onBatch?.(manifest);
  };

  for (;;) {
    const pending = await store.readPending(id, manifest.pendingBytes);
    if (pending.length === 0) return manifest;
    manifest = { ...manifest, build: { ...manifest.build, total: manifest.build.done + pending.length } };
    // The total is visible (to every replica) before the first batch ends.
    await store.writeManifest(manifest);
    const batches: { entry: PendingEntry; end: number }[][] = [];
    for (let i = 0; i < pending.length; i += options.batchSize) {
      batches.push(pending.slice(i, i + options.batchSize));
    }
    let next = prepare(batches[0]);
    for (let b = 0; b < batches.length; b++) {
      const items = await next;
      if (signal.aborted) throw new BuildAborted();
      // The next batch decodes while this one runs through the trunk and the head.
      if (b + 1 < batches.length) next = prepare(batches[b + 1]);
      const pixels = items.flatMap((item) => (item.kind === 'image' ? [item.pixels] : []));
      const maps = pixels.length > 0 ? await model.neuronMaps(pixels) : [];
      const embeddings = maps.length > 0 ? await model.imageEmbeddingsFromNeurons(maps) : [];
      if (signal.aborted) {
        await next.catch(() => undefined);
        throw new BuildAborted();
      }
      await commit(items, maps, embeddings);
      await options.heartbeat?.();
    }
  }
}
