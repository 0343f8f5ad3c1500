/**
 * Column-major copies of the images × C matrices (means, maxima, argmax), per complete block of
 * `columnBlock` rows: block b holds rows b·B … (b+1)·B − 1 laid out C × B, so one neuron's values
 * over the block are B contiguous values. A query reads one short run per block (and the rows of
 * the incomplete last block from the row-major file) instead of scanning every row.
 *
 * Written by the build after the rows are committed, and counted in the manifest only once
 * written (`columnBlocks`): a build interrupted in between rewrites the block when it resumes.
 */
import { open } from 'node:fs/promises';
import { FILES, readAt, writeAt, type CollectionManifest, type CollectionStore } from './store.js';

/** Each row-major file, its column-major copy, and its bytes per value. */
export const COLUMN_FILES = [
  { rows: FILES.means, columns: FILES.meansColumns, width: 4 },
  { rows: FILES.maxima, columns: FILES.maximaColumns, width: 4 },
  { rows: FILES.argmax, columns: FILES.argmaxColumns, width: 2 },
] as const;

/** Rows × C values of `width` bytes → C × rows. */
export function transpose(bytes: Uint8Array, rows: number, columns: number, width: 2 | 4): Uint8Array {
  const source = new Uint8Array(bytes); // aligned copy
  const out = new Uint8Array(source.length);
  if (width === 4) {
    const from = new Uint32Array(source.buffer);
    const to = new Uint32Array(out.buffer);
    for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) to[c * rows + r] = from[r * columns + c];
  } else {
    const from = new Uint16Array(source.buffer);
    const to = new Uint16Array(out.buffer);
    for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) to[c * rows + r] = from[r * columns + c];
  }
  return out;
}

/** Writes the column-major copy of every complete block not yet counted; resolves with the manifest. */
export async function writeColumnBlocks(
  store: CollectionStore,
  manifest: CollectionManifest,
): Promise<CollectionManifest> {
  const block = manifest.columnBlock;
  if (block === undefined) return manifest;
  const C = manifest.model.neurons;
  let current = manifest;
  for (let b = current.columnBlocks ?? 0; (b + 1) * block <= current.images; b++) {
    for (const file of COLUMN_FILES) {
      const handle = await open(store.file(current.id, file.rows), 'r');
      let bytes: Buffer;
      try {
        bytes = await readAt(handle, b * block * C * file.width, block * C * file.width);
      } finally {
        await handle.close();
      }
      const columns = transpose(bytes, block, C, file.width);
      await writeAt(store.file(current.id, file.columns), columns, b * block * C * file.width);
    }
    current = { ...current, columnBlocks: b + 1 };
    await store.writeManifest(current);
  }
  return current;
}
