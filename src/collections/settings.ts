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
 * | COLLECTION_SEARCH_BYTES | 768 MiB | image embeddings and neuron-mean codes kept in memory for retrieval (0: read from disk per query) |
 * | COLLECTION_MAX_COLLECTIONS_PER_OWNER | 50 | collections one owner (API key or address) may create |
 * | COLLECTION_MAX_IMAGES_PER_OWNER | 500000 | images over all of one owner's collections |
 * | COLLECTION_MAX_BYTES_PER_OWNER | 32 GiB | bytes of originals over all of one owner's collections |
 * | COLLECTIONS_ROOT | (unset: off) | server folder under which admins may add images from folders |
 *
 * Admin keys are exempt from the per-owner limits, and so is the service's probe collection.
 */
import {
  COLLECTION_ARCHIVE_BYTES,
  COLLECTION_MAX_BYTES_PER_OWNER,
  COLLECTION_MAX_COLLECTIONS_PER_OWNER,
  COLLECTION_MAX_IMAGES_PER_OWNER,
  COLLECTION_MAX_BYTES,
  COLLECTION_MAX_IMAGES,
  COLLECTION_UPLOAD_BYTES,
  COLLECTION_UPLOAD_FILES,
} from '../limits.js';
import path from 'node:path';
import { COLUMN_BLOCK } from './store.js';

export interface CollectionLimits {
  maxImages: number;
  maxBytes: number;
  uploadFiles: number;
  uploadBytes: number;
  archiveBytes: number;
  /** Per owner, over all its collections (admins exempt). */
  maxCollectionsPerOwner: number;
  maxImagesPerOwner: number;
  maxBytesPerOwner: number;
}

export interface CollectionSettings {
  batchSize: number;
  columnBlock: number;
  /** Bytes of image embeddings the retrieval thread keeps in memory (retrieval.ts). */
  searchBytes: number;
  limits: CollectionLimits;
  /** COLLECTIONS_ROOT, absolute: admins add images from folders under it; null: the feature is off. */
  root: string | null;
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
    searchBytes: readInteger(env, 'COLLECTION_SEARCH_BYTES', 768 * 1024 * 1024, 0, Number.MAX_SAFE_INTEGER),
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
      maxCollectionsPerOwner: readInteger(
        env,
        'COLLECTION_MAX_COLLECTIONS_PER_OWNER',
        COLLECTION_MAX_COLLECTIONS_PER_OWNER,
        1,
        1_000_000,
      ),
      maxImagesPerOwner: readInteger(
        env,
        'COLLECTION_MAX_IMAGES_PER_OWNER',
        COLLECTION_MAX_IMAGES_PER_OWNER,
        1,
        Number.MAX_SAFE_INTEGER,
      ),
      maxBytesPerOwner: readInteger(
        env,
        'COLLECTION_MAX_BYTES_PER_OWNER',
        COLLECTION_MAX_BYTES_PER_OWNER,
        1,
        Number.MAX_SAFE_INTEGER,
      ),
    },
    root: env.COLLECTIONS_ROOT?.trim() ? path.resolve(env.COLLECTIONS_ROOT.trim()) : null,
  };
}
