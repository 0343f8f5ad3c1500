/**
 * Settings of image collections, read from the environment (an empty variable counts as unset):
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | COLLECTION_BATCH | 16 | images per trunk run while a collection builds |
 * | COLLECTION_COLUMN_BLOCK | 1024 | rows per column-major block of a new collection (fast column reads) |
 * | COLLECTION_MAX_IMAGES | 100000 | images one collection may hold (indexed and pending) |
 * | COLLECTION_MAX_BYTES | 8 GiB | bytes of uploaded originals one collection may hold |
 * | COLLECTION_UPLOAD_FILES | 256 | image files in one upload request |
 * | COLLECTION_UPLOAD_BYTES | 256 MiB | bytes of files in one upload request |
 * | COLLECTION_ARCHIVE_BYTES | 512 MiB | bytes an uploaded archive may expand to |
 * | COLLECTION_SEARCH_BYTES | 512 MiB | image embeddings kept in memory for retrieval (0: read from disk per query) |
 */
import {
  COLLECTION_ARCHIVE_BYTES,
  COLLECTION_MAX_BYTES,
  COLLECTION_MAX_IMAGES,
  COLLECTION_UPLOAD_BYTES,
  COLLECTION_UPLOAD_FILES,
} from '../limits.js';
import { COLUMN_BLOCK } from './store.js';

export interface CollectionLimits {
  maxImages: number;
  maxBytes: number;
  uploadFiles: number;
  uploadBytes: number;
  archiveBytes: number;
}

export interface CollectionSettings {
  batchSize: number;
  columnBlock: number;
  /** Bytes of image embeddings the retrieval thread keeps in memory (retrieval.ts). */
  searchBytes: number;
  limits: CollectionLimits;
}

type Env = Record<string, string | undefined>;

function readInteger(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

export function loadCollectionSettings(env: Env = process.env): CollectionSettings {
  return {
    batchSize: readInteger(env, 'COLLECTION_BATCH', 16, 1, 1024),
    columnBlock: readInteger(env, 'COLLECTION_COLUMN_BLOCK', COLUMN_BLOCK, 1, 1_000_000),
    searchBytes: readInteger(env, 'COLLECTION_SEARCH_BYTES', 512 * 1024 * 1024, 0, Number.MAX_SAFE_INTEGER),
    limits: {
      maxImages: readInteger(env, 'COLLECTION_MAX_IMAGES', COLLECTION_MAX_IMAGES, 1, 100_000_000),
      maxBytes: readInteger(env, 'COLLECTION_MAX_BYTES', COLLECTION_MAX_BYTES, 1, Number.MAX_SAFE_INTEGER),
      uploadFiles: readInteger(env, 'COLLECTION_UPLOAD_FILES', COLLECTION_UPLOAD_FILES, 1, 100_000),
      uploadBytes: readInteger(
        env,
        'COLLECTION_UPLOAD_BYTES',
        COLLECTION_UPLOAD_BYTES,
        1,
        Number.MAX_SAFE_INTEGER,
      ),
      archiveBytes: readInteger(
        env,
        'COLLECTION_ARCHIVE_BYTES',
        COLLECTION_ARCHIVE_BYTES,
        1,
        Number.MAX_SAFE_INTEGER,
      ),
    },
  };
}
