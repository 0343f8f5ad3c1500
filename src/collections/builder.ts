/**
 * Indexing a collection's uploads, one shard at a time: a shard is a contiguous range of the pending
 * uploads (pending.ndjson), computed by any process (build-job.ts hands them out) and then
 * committed in order.
 *
 * computeShard: each upload is decoded and preprocessed (as the image routes do it), run through
 * the visual trunk (the neuron maps [C, h, w]) and the head (the embedding), and reduced to each
 * neuron's spatial mean, maximum and the cell of the maximum. Pipeline: while the trunk runs one
 * batch (on the model's inference thread), the next batch is decoded and thumbnailed (sharp, on
 * libuv's threads, under the process's one decode bound), and its trunk run is queued behind this
 * batch's head run, so the model's thread never waits for decoding or for the reductions here. The result is a shard file (encodeShard), not
 * rows: where an image's row goes depends on the shards before it (their duplicates and
 * non-images take no row).
 *
 * commitShard: under the build's commit lock, the next shard in order is written at its rows
 * (row × row bytes, as the store lays them out), and only then the manifest counts them and moves
 * its pending cursor past the shard's uploads: `images` grows as a contiguous prefix, so nothing
 * half-built is ever served. A commit interrupted between the rows and the manifest is redone over
 * the same rows. Duplicates are resolved here, against every image committed before (the first
 * upload of some bytes gets the row, whichever process computed it), so a build gives the same
 * rows however many workers share it.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import sharp from 'sharp';
import type { BoundedDecode } from '../clip/encoders.js';
import { pixelValuesOf, type PreprocessSpec } from '../clip/image.js';
import { spatialMeans } from '../clip/spatial-means.js';
import { writeColumnBlocks } from './columns.js';
import {
  FILES,
  NO_CATEGORY,
  float32Bytes,
  float32sOf,
  readAt,
  uint16Bytes,
  uint32Bytes,
  writeAt,
  type CollectionManifest,
  type CollectionStore,
  type ImageMeta,
  type PendingEntry,
} from './store.js';

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

export class BuildAborted extends Error {
  constructor() {
    super('the collection build was stopped');
    this.name = 'BuildAborted';
  }
}

/** One upload of a shard, in order: an image (its values in the shard's arrays), or not. */
export type ShardItem =
  | { kind: 'image'; entry: PendingEntry; width: number; height: number; thumbBytes: number }
  | { kind: 'duplicate'; entry: PendingEntry }
  | { kind: 'skipped'; entry: PendingEntry; reason: string };

/** A computed shard: its uploads in order, and for its k images k rows of each matrix. */
export interface ShardOutput {
  items: ShardItem[];
  means: Float32Array;
  maxima: Float32Array;
  argmax: Uint16Array;
  embeddings: Float32Array;
  /** The images' PNG thumbnails, back to back (each item has its length). */
  thumbs: Buffer;
  /** The process that computed the shard (pid@host), for the build's record. */
  computedBy?: string;
}

/**
 * Per-neuron spatial maximum and the cell where it is (the first, on ties), written into `max` and
 * `at` when given (their first `channels` values).
 */
export function spatialMaxima(
  maps: Float32Array,
  channels: number,
  max = new Float32Array(channels),
  at = new Uint16Array(channels),
): { max: Float32Array; at: Uint16Array } {
  const cells = maps.length / channels;
  for (let c = 0; c < channels; c++) {
    let best = -Infinity;
    let where = 0;
    for (let i = 0, base = c * cells; i < cells; i++) {
      const value = maps[base + i];
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

/** The sha256 of every indexed image, with its row (the first, should one repeat). */
export async function indexedShas(
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

export interface ComputeOptions {
  store: CollectionStore;
  id: string;
  model: CollectionModel;
  spec: PreprocessSpec;
  /** Decoding under the process's one decode bound (IMAGE_DECODE_CONCURRENCY, Encoders.decode). */
  decode: BoundedDecode;
  batchSize: number;
  entries: readonly PendingEntry[];
  /** Bytes already indexed: not computed again (commitShard counts them as duplicates). */
  known: ReadonlySet<string>;
  /** Read before every batch: true stops the shard (BuildAborted). */
  shouldStop(): Promise<boolean>;
  /** After each batch, with the uploads of the shard taken so far. */
  onBatch?(done: number): Promise<void>;
  /** When given, milliseconds of each stage are added to it (the benchmark's profile). */
  timings?: ShardTimings;
}

/**
 * Where a shard's time goes, in milliseconds of wall time on the main thread: waiting for a batch's
 * decoding (what the model did not hide), waiting for the model (trunk and head), reducing the maps
 * (means, maxima) and the onBatch hook. Decoding itself runs beside the model and is not counted.
 */
export interface ShardTimings {
  decodeWait: number;
  modelWait: number;
  reduce: number;
  onBatch: number;
}

type Prepared =
  | { kind: 'image'; entry: PendingEntry; pixels: Float32Array; width: number; height: number; thumb: Buffer }
  | { kind: 'duplicate'; entry: PendingEntry }
  | { kind: 'skipped'; entry: PendingEntry; reason: string };

/**
 * Computes a shard's uploads, pipelined so that the model's thread never waits for this one: batch
 * b + 1 is decoded while batch b runs, and its trunk run is queued right behind b's head run, before
 * b's maps are reduced here; batch b + 2 starts decoding then. At most three batches are alive.
 */
export async function computeShard(options: ComputeOptions): Promise<ShardOutput> {
  const { store, id, model, timings } = options;
  const C = model.neuronCount;
  const D = model.embedDim;
  const scheduled = new Set<string>(options.known);
  const clock = (stage: keyof ShardTimings, since: number) => {
    if (timings) timings[stage] += performance.now() - since;
  };

  const prepare = (entries: readonly PendingEntry[]): Promise<Prepared[]> =>
    Promise.all(
      entries.map(async (entry): Promise<Prepared> => {
        if (scheduled.has(entry.sha256)) return { kind: 'duplicate', entry };
        scheduled.add(entry.sha256);
        try {
          const bytes = await store.readImage(id, entry.sha256);
          if (createHash('sha256').update(bytes).digest('hex') !== entry.sha256) {
            return { kind: 'skipped', entry, reason: 'the stored bytes do not match their sha256' };
          }
          // The decoded image lives only inside its turn of the decode bound: out come the model's
          // pixel values and the thumbnail.
          return await options.decode(bytes, async (decoded): Promise<Prepared> => {
            const pixels = pixelValuesOf(decoded, options.spec);
            const thumb = await sharp(decoded.data, {
              raw: { width: decoded.width, height: decoded.height, channels: 3 },
            })
              .resize(THUMBNAIL_SIZE, THUMBNAIL_SIZE, { fit: 'inside', withoutEnlargement: true })
              .png()
              .toBuffer();
            return { kind: 'image', entry, pixels, width: decoded.width, height: decoded.height, thumb };
          });
        } catch (error) {
          scheduled.delete(entry.sha256);
          return { kind: 'skipped', entry, reason: (error as Error).message };
        }
      }),
    );
  const imagePixels = (batch: Prepared[]) =>
    batch.flatMap((item) => (item.kind === 'image' ? [item.pixels] : []));
  const trunkOf = (batch: Prepared[]): Promise<Float32Array[]> => {
    const pixels = imagePixels(batch);
    return pixels.length > 0 ? model.neuronMaps(pixels) : Promise.resolve([]);
  };

  const batches: PendingEntry[][] = [];
  for (let i = 0; i < options.entries.length; i += options.batchSize) {
    batches.push(options.entries.slice(i, i + options.batchSize));
  }
  const items: ShardItem[] = [];
  const means = new Float32Array(options.entries.length * C);
  const maxima = new Float32Array(options.entries.length * C);
  const argmax = new Uint16Array(options.entries.length * C);
  const embeddings = new Float32Array(options.entries.length * D);
  const thumbs: Buffer[] = [];
  let images = 0;
  let done = 0;
  // In flight: the decoding of the batch after `current`, and the trunk run of `current`.
  let decoding: Promise<Prepared[]> | undefined;
  let trunk: Promise<Float32Array[]> | undefined;
  const nextBatch = async (b: number): Promise<Prepared[]> => {
    let since = performance.now();
    const prepared = await decoding!;
    clock('decodeWait', since);
    since = performance.now();
    if (await options.shouldStop()) throw new BuildAborted();
    clock('onBatch', since);
    decoding = b + 1 < batches.length ? prepare(batches[b + 1]) : undefined;
    trunk = trunkOf(prepared);
    return prepared;
  };
  try {
    if (batches.length === 0) return emptyShard(items);
    decoding = prepare(batches[0]);
    let current = await nextBatch(0);
    for (let b = 0; b < batches.length; b++) {
      let since = performance.now();
      const maps = await trunk!;
      const head = maps.length > 0 ? model.imageEmbeddingsFromNeurons(maps) : Promise.resolve([]);
      clock('modelWait', since);
      // The next batch's trunk run is queued behind this head run: the model's thread goes on.
      const following = b + 1 < batches.length ? await nextBatch(b + 1) : undefined;
      since = performance.now();
      const embeds = await head;
      clock('modelWait', since);
      since = performance.now();
      let i = 0;
      for (const item of current) {
        if (item.kind !== 'image') {
          items.push(item);
          continue;
        }
        means.set(spatialMeans(maps[i], C), images * C);
        spatialMaxima(maps[i], C, maxima.subarray(images * C), argmax.subarray(images * C));
        embeddings.set(embeds[i], images * D);
        thumbs.push(item.thumb);
        items.push({
          kind: 'image',
          entry: item.entry,
          width: item.width,
          height: item.height,
          thumbBytes: item.thumb.length,
        });
        images++;
        i++;
      }
      clock('reduce', since);
      done += current.length;
      since = performance.now();
      await options.onBatch?.(done);
      clock('onBatch', since);
      if (following) current = following;
    }
  } finally {
    // Whatever is still in flight after a failure or a stop settles before the error goes on.
    await Promise.allSettled([decoding, trunk]);
  }
  return {
    items,
    means: means.slice(0, images * C),
    maxima: maxima.slice(0, images * C),
    argmax: argmax.slice(0, images * C),
    embeddings: embeddings.slice(0, images * D),
    thumbs: Buffer.concat(thumbs),
  };
}

function emptyShard(items: ShardItem[]): ShardOutput {
  return {
    items,
    means: new Float32Array(0),
    maxima: new Float32Array(0),
    argmax: new Uint16Array(0),
    embeddings: new Float32Array(0),
    thumbs: Buffer.alloc(0),
  };
}

/**
 * A shard file: a 4-byte length, a JSON header (the items, who computed them), then means, maxima (k × C Float32),
 * argmax (k × C Uint16, padded to 4 bytes), embeddings (k × D Float32) and the thumbnails.
 */
export function encodeShard(output: ShardOutput): Buffer {
  const header = Buffer.from(JSON.stringify({ items: output.items, computedBy: output.computedBy ?? null }));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.length);
  const pad = (bytes: Buffer) => Buffer.concat([bytes, Buffer.alloc((4 - (bytes.length % 4)) % 4)]);
  return Buffer.concat([
    length,
    pad(header),
    float32Bytes(output.means),
    float32Bytes(output.maxima),
    pad(uint16Bytes(output.argmax)),
    float32Bytes(output.embeddings),
    output.thumbs,
  ]);
}

export function decodeShard(bytes: Buffer, C: number, D: number): ShardOutput {
  const headerLength = bytes.readUInt32LE(0);
  const header = JSON.parse(bytes.subarray(4, 4 + headerLength).toString('utf8')) as {
    items: ShardItem[];
    computedBy: string | null;
  };
  const { items } = header;
  const k = items.filter((item) => item.kind === 'image').length;
  let at = 4 + headerLength + ((4 - (headerLength % 4)) % 4);
  const take = (length: number) => {
    const part = bytes.subarray(at, at + length);
    at += length;
    return part;
  };
  const means = float32sOf(take(k * C * 4));
  const maxima = float32sOf(take(k * C * 4));
  const argmaxBytes = take(k * C * 2);
  if ((k * C * 2) % 4 !== 0) at += 2;
  const argmax = new Uint16Array(k * C);
  for (let i = 0; i < k * C; i++) argmax[i] = argmaxBytes.readUInt16LE(i * 2);
  const embeddings = float32sOf(take(k * D * 4));
  const thumbs = Buffer.from(bytes.subarray(at));
  return { items, means, maxima, argmax, embeddings, thumbs, computedBy: header.computedBy ?? undefined };
}

/**
 * Writes a computed shard at the collection's next rows, then the manifest that counts them (and
 * moves the pending cursor to `end`, the byte after the shard's last upload); then the column
 * blocks that became complete. The caller holds the build's commit lock. Resolves with the manifest.
 */
export async function commitShard(
  store: CollectionStore,
  manifest: CollectionManifest,
  output: ShardOutput,
  end: number,
): Promise<CollectionManifest> {
  const id = manifest.id;
  const C = manifest.model.neurons;
  const D = manifest.model.embedDim;
  const shas = await indexedShas(store, manifest);
  // Images whose bytes an earlier shard indexed meanwhile become duplicates: their values are dropped.
  let source = 0;
  const rows: { item: Extract<ShardItem, { kind: 'image' }>; source: number; thumbAt: number }[] = [];
  const notImages: ShardItem[] = [];
  let thumbAt = 0;
  for (const item of output.items) {
    if (item.kind !== 'image') {
      notImages.push(item);
      continue;
    }
    if (shas.has(item.entry.sha256)) notImages.push({ kind: 'duplicate', entry: item.entry });
    else {
      rows.push({ item, source, thumbAt });
      shas.set(item.entry.sha256, manifest.images + rows.length - 1);
    }
    source++;
    thumbAt += item.thumbBytes;
  }
  const k = rows.length;
  const n = manifest.images;
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
  rows.forEach(({ item, source: s, thumbAt: t }, i) => {
    means.set(output.means.subarray(s * C, (s + 1) * C), i * C);
    maxima.set(output.maxima.subarray(s * C, (s + 1) * C), i * C);
    argmax.set(output.argmax.subarray(s * C, (s + 1) * C), i * C);
    embeds.set(output.embeddings.subarray(s * D, (s + 1) * D), i * D);
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
    const thumb = output.thumbs.subarray(t, t + item.thumbBytes);
    const meta: ImageMeta = {
      id: n + i,
      name: item.entry.name,
      category,
      caption: item.entry.caption,
      sha256: item.entry.sha256,
      bytes: item.entry.bytes,
      width: item.width,
      height: item.height,
      thumb: [thumbBytes, thumb.length],
      addedAt: now,
    };
    const line = Buffer.from(JSON.stringify(meta) + '\n');
    offsets.writeDoubleLE(metaBytes, i * 8);
    lines.push(line);
    thumbs.push(thumb);
    metaBytes += line.length;
    thumbBytes += thumb.length;
    bytes += item.entry.bytes;
  });
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
  for (const item of notImages) {
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
  build.done += output.items.length;
  let next: CollectionManifest = {
    ...manifest,
    images: n + k,
    bytes,
    metaBytes,
    thumbBytes,
    pendingBytes: end,
    categories,
    categoryCounts: counts,
    build,
  };
  await store.writeManifest(next);
  const block = next.columnBlock ?? 0;
  if (block > 0 && Math.floor(next.images / block) > (next.columnBlocks ?? 0)) {
    next = await writeColumnBlocks(store, next);
  }
  return next;
}
