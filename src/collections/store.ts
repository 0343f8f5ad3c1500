/**
 * On-disk storage of image collections, under DATA_DIR/collections/<id>/ (one folder each):
 *
 *   collection.json    the manifest (small: counts, categories, byte offsets, the build's state);
 *                      rewritten atomically (temp file + rename) after each committed batch
 *   means.f32          images × C  spatial mean of each neuron map, Float32 little-endian
 *   maxima.f32         images × C  spatial maximum of each neuron map
 *   argmax.u16         images × C  where the maximum is: the cell index y·w + x of the h×w grid
 *   embeddings.f32     images × D  image embedding (unnormalised, as the head gives it)
 *   categories.u32     images      index into the manifest's categories (0xFFFFFFFF: none)
 *   shas.bin           images × 32 sha256 of the image bytes (duplicates are stored once)
 *   meta.ndjson        one JSON line per image (name, category, caption, size, thumbnail slice)
 *   meta.idx           images      Float64 byte offset of each image's line in meta.ndjson
 *   thumbs.bin         PNG thumbnails, back to back (each line of meta.ndjson has its slice)
 *   *.cols.*           means, maxima and argmax again, per complete block of `columnBlock` rows
 *                      laid out column-major (C × block), for reading one neuron's column fast
 *   images/<sha256>    the uploaded bytes, kept for later on-demand maps
 *   pending.ndjson     uploads not yet indexed, appended by any replica (O_APPEND, one write each)
 *   build.lock         held by the process that builds (created exclusively, refreshed)
 *
 * Rows are written at their position (row × row bytes), not appended, and only then the manifest
 * counts them: a build interrupted between the two rewrites the same rows when it resumes, and a
 * reader never looks past the manifest's `images`. Queries read the files they need in chunks
 * (a neuron's column, the category codes, one image's line), never all of meta.ndjson.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import {
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
  type FileHandle,
} from 'node:fs/promises';
import { endianness, hostname } from 'node:os';
import path from 'node:path';

export const COLLECTION_FORMAT = 1;
/** Default rows per column-major block (see CollectionManifest.columnBlocks). */
export const COLUMN_BLOCK = 1024;
export const NO_CATEGORY = 0xffffffff;
/** A lock not refreshed for this long belongs to a dead process and may be taken over. */
export const LOCK_STALE_MS = 30_000;

export type BuildState = 'idle' | 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

export interface SkippedEntry {
  name: string;
  reason: string;
}

export interface DuplicateEntry {
  name: string;
  /** The image already stored with the same bytes. */
  imageId: number;
}

/** The last (or current) build of a collection, as every replica reads it from the manifest. */
export interface BuildStatus {
  jobId: string | null;
  state: BuildState;
  /** Uploads taken by this build so far (indexed, duplicate or skipped). */
  done: number;
  /** Uploads this build knows of. */
  total: number;
  /** Images already indexed when this build (or its resumption) started. */
  resumedFrom: number;
  startedAt: string | null;
  finishedAt: string | null;
  error?: string;
  /** Uploads that were not images (first 100). */
  skipped: SkippedEntry[];
  /** Uploads whose bytes were already in the collection (first 100). */
  duplicates: DuplicateEntry[];
}

export interface CollectionManifest {
  format: number;
  id: string;
  name: string;
  owner: string;
  createdAt: string;
  model: { sha256: string; neurons: number; embedDim: number; grid: [number, number] };
  /** Images indexed: the rows of every matrix file that readers may use. */
  images: number;
  /** Bytes of the indexed images (the originals). */
  bytes: number;
  metaBytes: number;
  thumbBytes: number;
  /** Bytes of pending.ndjson consumed by builds. */
  pendingBytes: number;
  categories: string[];
  categoryCounts: number[];
  build: BuildStatus;
  /** Rows per column-major block (COLLECTION_COLUMN_BLOCK when the collection was created). */
  columnBlock?: number;
  /**
   * Complete blocks of `columnBlock` rows copied column-major into the *.cols files (absent: 0),
   * so that a neuron's column is read as one short run per block instead of a scan of every row.
   */
  columnBlocks?: number;
}

/** One image's line in meta.ndjson. */
export interface ImageMeta {
  id: number;
  name: string;
  category: string | null;
  caption: string | null;
  sha256: string;
  bytes: number;
  width: number;
  height: number;
  thumb: [offset: number, length: number];
  addedAt: string;
}

/** An upload waiting in pending.ndjson. */
export interface PendingEntry {
  name: string;
  category: string | null;
  caption: string | null;
  sha256: string;
  bytes: number;
}

export const FILES = {
  manifest: 'collection.json',
  means: 'means.f32',
  maxima: 'maxima.f32',
  argmax: 'argmax.u16',
  meansColumns: 'means.cols.f32',
  maximaColumns: 'maxima.cols.f32',
  argmaxColumns: 'argmax.cols.u16',
  embeddings: 'embeddings.f32',
  categories: 'categories.u32',
  shas: 'shas.bin',
  meta: 'meta.ndjson',
  metaIndex: 'meta.idx',
  thumbs: 'thumbs.bin',
  pending: 'pending.ndjson',
  lock: 'build.lock',
  images: 'images',
} as const;

export const COLLECTION_ID_PATTERN = '^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$';
const ID_RE = new RegExp(COLLECTION_ID_PATTERN);

/** The id a name gets: lower case, runs of other characters as one hyphen. Empty: no usable letter. */
export function collectionIdOf(name: string): string {
  return name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64)
    .replace(/-+$/, '');
}

export function emptyBuild(): BuildStatus {
  return {
    jobId: null,
    state: 'idle',
    done: 0,
    total: 0,
    resumedFrom: 0,
    startedAt: null,
    finishedAt: null,
    skipped: [],
    duplicates: [],
  };
}

/** Writes `data` to `file` atomically: a temp file beside it, synced, then renamed over it. */
export async function writeAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
}

export class CollectionStore {
  readonly root: string;

  constructor(dataDir: string) {
    this.root = path.join(dataDir, 'collections');
  }

  dir(id: string): string {
    if (!ID_RE.test(id)) throw new Error(`not a collection id: ${id}`);
    return path.join(this.root, id);
  }

  file(id: string, name: string): string {
    return path.join(this.dir(id), name);
  }

  /** Creates the folder and manifest; false when a collection with this id exists. */
  async create(manifest: CollectionManifest): Promise<boolean> {
    await mkdir(this.root, { recursive: true });
    // Built aside, then renamed into place: a collection appears whole or not at all.
    const staging = path.join(this.root, `.new-${manifest.id}-${randomBytes(4).toString('hex')}`);
    await mkdir(path.join(staging, FILES.images), { recursive: true });
    await writeFile(path.join(staging, FILES.manifest), JSON.stringify(manifest));
    try {
      await rename(staging, this.dir(manifest.id));
      return true;
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
      throw error;
    }
  }

  async manifest(id: string): Promise<CollectionManifest | undefined> {
    if (!ID_RE.test(id)) return undefined;
    try {
      return JSON.parse(await readFile(this.file(id, FILES.manifest), 'utf8')) as CollectionManifest;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  writeManifest(manifest: CollectionManifest): Promise<void> {
    return writeAtomic(this.file(manifest.id, FILES.manifest), JSON.stringify(manifest));
  }

  async ids(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return names.filter((name) => ID_RE.test(name)).sort();
  }

  /** Removes a collection: renamed away first (readers see it gone at once), then deleted. */
  async remove(id: string): Promise<boolean> {
    const trash = path.join(this.root, `.deleted-${id}-${randomBytes(4).toString('hex')}`);
    try {
      await rename(this.dir(id), trash);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
    await rm(trash, { recursive: true, force: true });
    return true;
  }

  /** Stores an upload's bytes under images/<sha256> (once: equal bytes share the file). */
  async putImage(id: string, sha256: string, bytes: Uint8Array): Promise<void> {
    const file = path.join(this.dir(id), FILES.images, sha256);
    try {
      await stat(file);
      return;
    } catch {
      await writeAtomic(file, bytes);
    }
  }

  readImage(id: string, sha256: string): Promise<Buffer> {
    return readFile(path.join(this.dir(id), FILES.images, sha256));
  }

  /** Appends uploads to pending.ndjson in one write. */
  async appendPending(id: string, entries: readonly PendingEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const text = entries.map((entry) => JSON.stringify(entry) + '\n').join('');
    const handle = await open(this.file(id, FILES.pending), 'a');
    try {
      await handle.write(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Complete pending lines from byte `from`, with the byte offset after each. */
  async readPending(id: string, from: number): Promise<{ entry: PendingEntry; end: number }[]> {
    let data: Buffer;
    try {
      const handle = await open(this.file(id, FILES.pending), 'r');
      try {
        const { size } = await handle.stat();
        if (size <= from) return [];
        data = Buffer.alloc(size - from);
        await handle.read(data, 0, data.length, from);
      } finally {
        await handle.close();
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const out: { entry: PendingEntry; end: number }[] = [];
    let start = 0;
    for (;;) {
      const newline = data.indexOf(10, start);
      if (newline < 0) break;
      out.push({
        entry: JSON.parse(data.subarray(start, newline).toString('utf8')) as PendingEntry,
        end: from + newline + 1,
      });
      start = newline + 1;
    }
    return out;
  }

  /** Whether uploads are staged that no build has consumed yet (pending.ndjson past `pendingBytes`). */
  async hasStaged(manifest: CollectionManifest): Promise<boolean> {
    return (await this.pendingSize(manifest.id)) > manifest.pendingBytes;
  }

  /** Size of pending.ndjson (0 when absent). */
  async pendingSize(id: string): Promise<number> {
    try {
      return (await stat(this.file(id, FILES.pending))).size;
    } catch {
      return 0;
    }
  }

  /** Takes the build lock; false while a live process holds it. */
  async tryLock(id: string): Promise<boolean> {
    const file = this.file(id, FILES.lock);
    const owner = JSON.stringify({ pid: process.pid, host: hostname(), at: new Date().toISOString() });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(file, owner, {
          flag: fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY,
        });
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const age = Date.now() - (await stat(file).catch(() => ({ mtimeMs: 0 }))).mtimeMs;
        if (age < LOCK_STALE_MS) return false;
        await rm(file, { force: true });
      }
    }
    return false;
  }

  async refreshLock(id: string): Promise<void> {
    const now = new Date();
    await utimes(this.file(id, FILES.lock), now, now).catch(() => undefined);
  }

  async unlock(id: string): Promise<void> {
    await rm(this.file(id, FILES.lock), { force: true }).catch(() => undefined);
  }
}

/** Writes `data` at byte `position` of `file` (created when absent). */
export async function writeAt(file: string, data: Uint8Array, position: number): Promise<void> {
  const handle = await open(file, fsConstants.O_CREAT | fsConstants.O_WRONLY);
  try {
    await handle.write(data, 0, data.byteLength, position);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Reads `length` bytes at `position` of an open file (short only at its end). */
export async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let read = 0;
  while (read < length) {
    const { bytesRead } = await handle.read(buffer, read, length - read, position + read);
    if (bytesRead === 0) break;
    read += bytesRead;
  }
  return buffer.subarray(0, read);
}

/** Little-endian views of raw bytes (the files are little-endian on every platform). */
const LITTLE_ENDIAN = endianness() === 'LE';

export function float32sOf(bytes: Buffer): Float32Array {
  const count = bytes.length >> 2;
  if (LITTLE_ENDIAN) return new Float32Array(new Uint8Array(bytes.subarray(0, count * 4)).buffer);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

export function float32Bytes(values: Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const out = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i], i * 4);
  return out;
}

export function uint32Bytes(values: Uint32Array): Buffer {
  const out = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeUInt32LE(values[i], i * 4);
  return out;
}

export function uint16Bytes(values: Uint16Array): Buffer {
  const out = Buffer.alloc(values.length * 2);
  for (let i = 0; i < values.length; i++) out.writeUInt16LE(values[i], i * 2);
  return out;
}
