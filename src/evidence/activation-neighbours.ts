/**
 * A neuron's neighbours by activations over a collection, from its files (neighbours.ts has the
 * arithmetic): the per-neuron means and centred sums of squares, computed in one pass once per
 * collection state and kept (a few states); then, per query, the neuron's column and the numerators
 * of its correlations with every neuron. Both read the column-major blocks (means.cols.f32: one
 * contiguous run per neuron and block, summed in locals) and the row-major rows after the last
 * complete block (means.f32), into one reused buffer.
 *
 * Runs on a thread of its own (neighbour-thread.ts) for the service (neighbour-service.ts): a query
 * reads the whole matrix, hundreds of MiB at RN50-x4 size, and must not hold the event loop.
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { endianness } from 'node:os';
import { CollectionReader } from '../collections/reader.js';
import { CollectionStore, FILES, float32sOf, type CollectionManifest } from '../collections/store.js';
import { conflict, notFound } from '../errors.js';
import { BlockDots, correlations, GroupMoments, topNeighbours, type Neighbour } from './neighbours.js';

export interface ActivationQuery {
  /** The collections' DATA_DIR. */
  dataDir: string;
  manifest: CollectionManifest;
  neuron: number;
  k: number;
}

interface Moments {
  images: number;
  means: Float64Array;
  squares: Float64Array;
}

const LITTLE_ENDIAN = endianness() === 'LE';
/** Collection states whose moments are kept. */
const KEPT_STATES = 8;
/** Bytes read at a time from the row-major file (the column-major one is read a block at a time). */
const READ_BYTES = 8 << 20;

const stateKey = (manifest: CollectionManifest) =>
  `${manifest.id}|${manifest.images}|${manifest.build.jobId ?? ''}|${manifest.build.finishedAt ?? ''}`;

export class ActivationNeighbours {
  private readonly moments = new Map<string, Promise<Moments>>();

  /** The k neurons whose centred activation columns over the collection are most like the neuron's. */
  async neighbours({ dataDir, manifest, neuron, k }: ActivationQuery): Promise<Neighbour[]> {
    if (manifest.images < 2) {
      throw conflict(
        `collection "${manifest.id}" has ${manifest.images} indexed image${manifest.images === 1 ? '' : 's'} (build: ${manifest.build.state}): an activation pattern needs at least 2`,
      );
    }
    const store = new CollectionStore(dataDir);
    const reader = new CollectionReader(store, manifest);
    const { means, squares, images } = await this.momentsOf(manifest, store);
    if (!(squares[neuron] > 0)) {
      throw conflict(
        `neuron ${neuron} is constant over the ${images} images of collection "${manifest.id}": its activation pattern has no direction`,
      );
    }
    const column = await reader.column(FILES.means, neuron);
    const target = Float64Array.from(column.subarray(0, images), (value) => value - means[neuron]);
    const dots = new BlockDots(means, target);
    await visitMatrix(store, manifest, images, {
      block: (values, start, rows) => dots.addBlock(values, start, rows),
      rows: (values, start, count) => dots.addRows(values, start, count),
    });
    return topNeighbours(correlations(dots.dots, squares, squares[neuron]), neuron, k);
  }

  /** Per-neuron means and centred sums of squares over the collection's images, once per state. */
  private momentsOf(manifest: CollectionManifest, store: CollectionStore): Promise<Moments> {
    const key = stateKey(manifest);
    let moments = this.moments.get(key);
    if (!moments) {
      moments = (async () => {
        const accumulator = new GroupMoments(manifest.model.neurons);
        await visitMatrix(store, manifest, manifest.images, {
          block: (values, _start, rows) => accumulator.addBlock(values, rows),
          rows: (values, _start, count) => accumulator.addRows(values, count),
        });
        return accumulator.result();
      })();
      moments.catch(() => this.moments.delete(key));
      for (const old of this.moments.keys()) if (old.startsWith(`${manifest.id}|`)) this.moments.delete(old);
      if (this.moments.size >= KEPT_STATES) this.moments.delete(this.moments.keys().next().value as string);
      this.moments.set(key, moments);
    }
    return moments;
  }
}

/**
 * Visits the first `images` rows of the collection's means: the complete column-major blocks
 * (means.cols.f32) a block at a time, then the rows after them (means.f32) in chunks, each read into
 * one reused buffer (no allocation or copy per chunk on a little-endian machine).
 */
async function visitMatrix(
  store: CollectionStore,
  manifest: CollectionManifest,
  images: number,
  visit: {
    block: (values: Float32Array, start: number, rows: number) => void;
    rows: (values: Float32Array, start: number, count: number) => void;
  },
): Promise<void> {
  const C = manifest.model.neurons;
  const rowBytes = C * 4;
  const block = manifest.columnBlock ?? 0;
  const blocks = Math.min(manifest.columnBlocks ?? 0, block > 0 ? Math.floor(images / block) : 0);
  const first = blocks * block;
  const rowsPerChunk = Math.max(1, Math.floor(READ_BYTES / rowBytes));
  const buffer = Buffer.allocUnsafeSlow(
    Math.max(block * rowBytes, Math.min(images - first, rowsPerChunk) * rowBytes),
  );
  const floats = (length: number) =>
    LITTLE_ENDIAN
      ? new Float32Array(buffer.buffer, buffer.byteOffset, length / 4)
      : float32sOf(buffer.subarray(0, length));
  const fill = async (handle: FileHandle, position: number, length: number, name: string) => {
    let read = 0;
    while (read < length) {
      const { bytesRead } = await handle.read(buffer, read, length - read, position + read);
      if (bytesRead === 0) throw new Error(`${name} of ${manifest.id} is short`);
      read += bytesRead;
    }
    return floats(length);
  };
  if (blocks > 0) {
    const blockBytes = block * rowBytes;
    await withFile(store, manifest, FILES.meansColumns, async (handle) => {
      for (let b = 0; b < blocks; b++) {
        visit.block(await fill(handle, b * blockBytes, blockBytes, FILES.meansColumns), b * block, block);
      }
    });
  }
  if (first < images) {
    await withFile(store, manifest, FILES.means, async (handle) => {
      for (let row = first; row < images; row += rowsPerChunk) {
        const count = Math.min(rowsPerChunk, images - row);
        visit.rows(await fill(handle, row * rowBytes, count * rowBytes, FILES.means), row, count);
      }
    });
  }
}

/** Opens one of the collection's files for `work`; 404 when the collection was deleted meanwhile. */
async function withFile<T>(
  store: CollectionStore,
  manifest: CollectionManifest,
  name: string,
  work: (handle: FileHandle) => Promise<T>,
): Promise<T> {
  let handle: FileHandle;
  try {
    handle = await open(store.file(manifest.id, name), 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw notFound(`collection "${manifest.id}" not found (deleted while it was read)`);
    }
    throw error;
  }
  try {
    return await work(handle);
  } finally {
    await handle.close();
  }
}
