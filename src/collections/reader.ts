/**
 * Reads a collection's files for queries: one neuron's column of the images × C matrices (read in
 * chunks of rows, so memory stays at one chunk plus the column), the category codes, and single
 * images' metadata lines and thumbnails through meta.idx. Only the first `images` rows (the
 * manifest's count) are ever read: rows past it belong to a batch not yet committed.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { notFound } from '../errors.js';
import {
  FILES,
  float32sOf,
  readAt,
  type CollectionManifest,
  type CollectionStore,
  type ImageMeta,
} from './store.js';

/** Bytes read per chunk when scanning a matrix file. */
const CHUNK_BYTES = 4 * 1024 * 1024;

export type MatrixFile = typeof FILES.means | typeof FILES.maxima;

export class CollectionReader {
  constructor(
    private readonly store: CollectionStore,
    readonly manifest: CollectionManifest,
  ) {}

  /** The path of one of the collection's files. */
  file(name: string): string {
    return this.store.file(this.manifest.id, name);
  }

  /** Opens one of the collection's files; 404 when the collection was deleted meanwhile. */
  private async openFile(name: string): Promise<FileHandle> {
    try {
      return await open(this.file(name), 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw notFound(`collection "${this.manifest.id}" not found (deleted while it was read)`);
      }
      throw error;
    }
  }

  /** Column `neuron` of an images × C Float32 file, for the indexed images. */
  async column(name: MatrixFile, neuron: number): Promise<Float32Array> {
    const columns = name === FILES.means ? FILES.meansColumns : FILES.maximaColumns;
    return this.columns(name, columns, neuron, 4, (bytes, at) => bytes.readFloatLE(at));
  }

  /** Column `neuron` of argmax.u16 (the cell of each image's maximum). */
  async argmaxColumn(neuron: number): Promise<Float32Array> {
    return this.columns(FILES.argmax, FILES.argmaxColumns, neuron, 2, (bytes, at) => bytes.readUInt16LE(at));
  }

  /**
   * The complete column-major blocks give one run of `block` values each (columns.ts); the rows
   * after them are read from the row-major file in chunks.
   */
  private async columns(
    name: string,
    columnsName: string,
    neuron: number,
    width: number,
    read: (bytes: Buffer, at: number) => number,
  ): Promise<Float32Array> {
    const { images, model } = this.manifest;
    const C = model.neurons;
    const out = new Float32Array(images);
    if (images === 0) return out;
    const block = this.manifest.columnBlock ?? 0;
    const blocks = Math.min(this.manifest.columnBlocks ?? 0, block > 0 ? Math.floor(images / block) : 0);
    if (blocks > 0) {
      const handle = await this.openFile(columnsName);
      try {
        for (let b = 0; b < blocks; b++) {
          const bytes = await readAt(handle, (b * block * C + neuron * block) * width, block * width);
          if (bytes.length < block * width) throw new Error(`${columnsName} of ${this.manifest.id} is short`);
          for (let r = 0; r < block; r++) out[b * block + r] = read(bytes, r * width);
        }
      } finally {
        await handle.close();
      }
    }
    const first = blocks * block;
    if (first >= images) return out;
    const rowBytes = C * width;
    const rowsPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
    const handle = await this.openFile(name);
    try {
      for (let row = first; row < images; row += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, images - row);
        const bytes = await readAt(handle, row * rowBytes, rows * rowBytes);
        if (bytes.length < rows * rowBytes) throw new Error(`${name} of ${this.manifest.id} is short`);
        for (let r = 0; r < rows; r++) out[row + r] = read(bytes, r * rowBytes + neuron * width);
      }
    } finally {
      await handle.close();
    }
    return out;
  }

  /** One row (an image) of an images × width Float32 file. */
  async row(name: typeof FILES.means | typeof FILES.maxima | typeof FILES.embeddings, image: number) {
    const width = name === FILES.embeddings ? this.manifest.model.embedDim : this.manifest.model.neurons;
    const handle = await this.openFile(name);
    try {
      return float32sOf(await readAt(handle, image * width * 4, width * 4));
    } finally {
      await handle.close();
    }
  }

  /**
   * Visits the indexed rows of an images × width Float32 file in chunks (rows × width values, from
   * row `start`), so a scan holds one chunk in memory whatever the collection's size.
   */
  async scan(
    name: typeof FILES.means | typeof FILES.embeddings,
    visit: (rows: Float32Array, start: number, count: number) => void,
  ): Promise<void> {
    const { images, model } = this.manifest;
    if (images === 0) return;
    const width = name === FILES.embeddings ? model.embedDim : model.neurons;
    const rowBytes = width * 4;
    const rowsPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
    const handle = await this.openFile(name);
    try {
      for (let row = 0; row < images; row += rowsPerChunk) {
        const count = Math.min(rowsPerChunk, images - row);
        const bytes = await readAt(handle, row * rowBytes, count * rowBytes);
        if (bytes.length < count * rowBytes) throw new Error(`${name} of ${this.manifest.id} is short`);
        visit(float32sOf(bytes), row, count);
      }
    } finally {
      await handle.close();
    }
  }

  /** The category code of every indexed image (NO_CATEGORY: none). */
  async categoryCodes(): Promise<Uint32Array> {
    const { images } = this.manifest;
    const out = new Uint32Array(images);
    if (images === 0) return out;
    const handle = await this.openFile(FILES.categories);
    try {
      const bytes = await readAt(handle, 0, images * 4);
      for (let i = 0; i < images; i++) out[i] = bytes.readUInt32LE(i * 4);
    } finally {
      await handle.close();
    }
    return out;
  }

  /** The metadata of image `id`, or undefined when it is not (yet) indexed. */
  async meta(id: number): Promise<ImageMeta | undefined> {
    return (await this.metas([id]))[0];
  }

  /** Metadata of several images (undefined for ids not indexed), with the files opened once. */
  async metas(ids: readonly number[]): Promise<(ImageMeta | undefined)[]> {
    const { images, metaBytes } = this.manifest;
    if (!ids.some((id) => id >= 0 && id < images)) return ids.map(() => undefined);
    const index = await this.openFile(FILES.metaIndex);
    const meta = await this.openFile(FILES.meta);
    try {
      const out: (ImageMeta | undefined)[] = [];
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= images) {
          out.push(undefined);
          continue;
        }
        const offsets = await readAt(index, id * 8, id + 1 < images ? 16 : 8);
        const start = offsets.readDoubleLE(0);
        const end = id + 1 < images ? offsets.readDoubleLE(8) : metaBytes;
        const line = await readAt(meta, start, end - start);
        out.push(JSON.parse(line.toString('utf8')) as ImageMeta);
      }
      return out;
    } finally {
      await meta.close();
      await index.close();
    }
  }

  async thumbnail(meta: ImageMeta): Promise<Buffer> {
    const handle = await this.openFile(FILES.thumbs);
    try {
      return await readAt(handle, meta.thumb[0], meta.thumb[1]);
    } finally {
      await handle.close();
    }
  }
}
