/**
 * Per-owner limits of image collections (the owner is an API key, or a client address when the
 * service is open): how many collections it may create, and how many images and bytes of originals
 * all its collections may hold together, indexed and pending. Admin keys are exempt, and so are
 * collections the service owns (the probe collection). Each refusal names the limit and its
 * variable (settings.ts).
 */
import { HttpError, payloadTooLarge } from '../errors.js';
import type { CollectionLimits } from './settings.js';
import type { CollectionStore } from './store.js';

/** The owner of the collections the service makes itself (the probe): never limited. */
export const SERVICE_OWNER = 'service';

export interface OwnerTotals {
  collections: number;
  images: number;
  bytes: number;
}

/** What an owner's collections hold, over every collection on the volume (any model). */
export async function ownerTotals(store: CollectionStore, owner: string): Promise<OwnerTotals> {
  const totals: OwnerTotals = { collections: 0, images: 0, bytes: 0 };
  for (const id of await store.ids()) {
    const manifest = await store.manifest(id).catch(() => undefined);
    if (!manifest || manifest.owner !== owner) continue;
    const pending = await store.readPending(id, manifest.pendingBytes).catch(() => []);
    totals.collections++;
    totals.images += manifest.images + pending.length;
    totals.bytes += manifest.bytes + pending.reduce((sum, { entry }) => sum + entry.bytes, 0);
  }
  return totals;
}

const exempt = (owner: string, admin: boolean) => admin || owner === SERVICE_OWNER;

/** Before a collection is created: 403 when the owner has COLLECTION_MAX_COLLECTIONS_PER_OWNER. */
export async function checkCollectionCount(
  store: CollectionStore,
  limits: CollectionLimits,
  owner: string,
  admin: boolean,
): Promise<void> {
  if (exempt(owner, admin)) return;
  const { collections } = await ownerTotals(store, owner);
  if (collections >= limits.maxCollectionsPerOwner) {
    throw new HttpError(
      403,
      `this client owns ${collections} collections; the limit is ${limits.maxCollectionsPerOwner} per API key (COLLECTION_MAX_COLLECTIONS_PER_OWNER): delete one first`,
    );
  }
}

/** Before uploads are staged: 413 when the owner's collections would pass the image or byte limit. */
export async function checkOwnerTotals(
  store: CollectionStore,
  limits: CollectionLimits,
  owner: string,
  admin: boolean,
  adding: { images: number; bytes: number },
): Promise<void> {
  if (exempt(owner, admin)) return;
  const totals = await ownerTotals(store, owner);
  const images = totals.images + adding.images;
  if (images > limits.maxImagesPerOwner) {
    throw payloadTooLarge(
      `the collections of this client would hold ${images} images (${totals.images} now, ${adding.images} sent); the limit is ${limits.maxImagesPerOwner} per API key (COLLECTION_MAX_IMAGES_PER_OWNER)`,
    );
  }
  const bytes = totals.bytes + adding.bytes;
  if (bytes > limits.maxBytesPerOwner) {
    throw payloadTooLarge(
      `the collections of this client would hold ${bytes} bytes of images (${totals.bytes} now, ${adding.bytes} sent); the limit is ${limits.maxBytesPerOwner} bytes per API key (COLLECTION_MAX_BYTES_PER_OWNER)`,
    );
  }
}
