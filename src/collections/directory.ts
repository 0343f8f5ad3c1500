/**
 * Adds the images of a folder listing (folder.ts) to a collection: checked against the limits from
 * the files' sizes before anything is staged, then read and staged in batches (the bytes of one
 * batch in memory at a time), each joining the collection's build. Used by the CLI
 * (`npm run collect`) and by POST /v1/collections/{id}/directory (COLLECTIONS_ROOT).
 */
import { readFile, stat } from 'node:fs/promises';
import { badRequest, payloadTooLarge } from '../errors.js';
import { MAX_IMAGE_BYTES } from '../limits.js';
import type { FoundImage } from './folder.js';
import type { Client, CollectionService, Upload } from './service.js';

/** Files read and staged per addImages call: bounds the bytes held in memory at once. */
export const STAGE_BATCH = 64;

export interface StageResult {
  jobId: string;
  pending: number;
  accepted: number;
}

/** Refuses (413) a listing whose files, or whose total, pass the image or collection limits. */
async function checkSizes(
  service: CollectionService,
  id: string,
  images: readonly FoundImage[],
): Promise<void> {
  const { limits } = service.settings;
  const manifest = await service.get(id);
  const pending = await service.pendingCount(manifest);
  const count = manifest.images + pending + images.length;
  if (count > limits.maxImages) {
    throw payloadTooLarge(
      `collection "${id}" would hold ${count} images (${manifest.images} indexed, ${pending} pending, ${images.length} in the folder); the limit is ${limits.maxImages} (COLLECTION_MAX_IMAGES)`,
    );
  }
  let bytes = manifest.bytes;
  for (const image of images) {
    const { size } = await stat(image.path);
    if (size > MAX_IMAGE_BYTES) {
      throw payloadTooLarge(`image "${image.name}" is ${size} bytes; the limit is ${MAX_IMAGE_BYTES} bytes`);
    }
    bytes += size;
  }
  if (bytes > limits.maxBytes) {
    throw payloadTooLarge(
      `collection "${id}" would hold ${bytes} bytes of images; the limit is ${limits.maxBytes} bytes (COLLECTION_MAX_BYTES)`,
    );
  }
}

/**
 * Stages the images of a listing into a collection and starts (or joins) its build; `onBatch`
 * is called after each batch, and returning false from `keepGoing` stops between batches.
 */
export async function addFolderImages(
  service: CollectionService,
  id: string,
  images: readonly FoundImage[],
  options: { client?: Client; onBatch?: () => Promise<void>; keepGoing?: () => boolean } = {},
): Promise<StageResult> {
  if (images.length === 0) throw badRequest('the folder holds no images to add');
  await checkSizes(service, id, images);
  let result = { jobId: '', pending: 0 };
  let accepted = 0;
  for (let i = 0; i < images.length && (options.keepGoing?.() ?? true); i += STAGE_BATCH) {
    const uploads: Upload[] = await Promise.all(
      images.slice(i, i + STAGE_BATCH).map(async (image) => ({
        name: image.name,
        bytes: await readFile(image.path),
        category: image.category,
        caption: image.caption,
      })),
    );
    result = await service.addImages(id, uploads, options.client);
    accepted += uploads.length;
    await options.onBatch?.();
  }
  return { ...result, accepted };
}
