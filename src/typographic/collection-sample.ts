/**
 * The images of an attack taken from a collection instead of uploaded: named ones (`imageIds`), or a
 * seeded sample (`sample`: a count, a seed, optionally only some categories), drawn among the indexed
 * images. The same seed on the same collection draws the same images. Each image's category is its
 * true label when it is among the attack's labels (compared as words: case and outer spaces aside).
 *
 * The attack reads the uploaded originals (the collection keeps them under images/<sha256>), so a job
 * carries references, not bytes: any worker sharing DATA_DIR reads them when it runs.
 */
import type { CollectionService } from '../collections/service.js';
import { CollectionReader } from '../collections/reader.js';
import { NO_CATEGORY } from '../collections/store.js';
import { badRequest, notFound } from '../errors.js';

export interface SampleSpec {
  count: number;
  /** The draw's seed (default 0). */
  seed?: number;
  /** Only images of these categories. */
  categories?: string[];
}

/** An image of a collection, as an attack names it. */
export interface CollectionImage {
  imageId: number;
  name: string;
  category: string | null;
  sha256: string;
}

/** A 32-bit seeded generator (mulberry32): uniform in [0, 1). */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` of the candidates without replacement (a partial Fisher–Yates shuffle), in ascending order. */
export function sampleWithoutReplacement(
  candidates: readonly number[],
  count: number,
  seed: number,
): number[] {
  const pool = [...candidates];
  const random = generator(seed);
  const n = Math.min(count, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, n).sort((a, b) => a - b);
}

/** The images an attack names in a collection: `imageIds`, or a sample. */
export async function collectionImages(
  collections: CollectionService,
  id: string,
  pick: { imageIds: number[] } | { sample: SampleSpec },
): Promise<CollectionImage[]> {
  const manifest = await collections.get(id);
  await collections.requireIndexed(manifest);
  const reader = new CollectionReader(collections.store, manifest);
  let ids: number[];
  if ('imageIds' in pick) {
    ids = pick.imageIds;
    const missing = ids.find((imageId) => imageId >= manifest.images);
    if (missing !== undefined) {
      throw notFound(
        `image ${missing} is not indexed in collection "${id}" (ids 0 to ${manifest.images - 1} are)`,
      );
    }
  } else {
    const { count, seed = 0, categories } = pick.sample;
    let candidates = Array.from({ length: manifest.images }, (_, i) => i);
    if (categories) {
      const codes = new Set<number>();
      for (const name of categories) {
        const code = manifest.categories.indexOf(name);
        if (code < 0) {
          const known = manifest.categories.slice(0, 20).map((c) => `"${c}"`);
          const more = manifest.categories.length > 20 ? `, … (${manifest.categories.length})` : '';
          throw badRequest(
            `sample.categories: "${name.slice(0, 60)}" is not a category of collection "${id}" (${known.join(', ') || 'it has none'}${more})`,
          );
        }
        codes.add(code);
      }
      const all = await reader.categoryCodes();
      candidates = candidates.filter((i) => all[i] !== NO_CATEGORY && codes.has(all[i]));
    }
    if (count > candidates.length) {
      throw badRequest(
        `sample.count ${count} is more than the ${candidates.length} indexed images of collection "${id}"${categories ? ' in those categories' : ''}`,
      );
    }
    ids = sampleWithoutReplacement(candidates, count, seed);
  }
  const metas = await reader.metas(ids);
  return metas.map((meta, i) => {
    if (!meta) throw notFound(`image ${ids[i]} is not indexed in collection "${id}"`);
    return { imageId: meta.id, name: meta.name, category: meta.category, sha256: meta.sha256 };
  });
}

/** Each image's category when it is one of the labels (as that label is spelled), else null. */
export function categoryLabels(
  images: readonly CollectionImage[],
  labels: readonly string[],
): (string | null)[] {
  const byWord = new Map(labels.map((label) => [label.trim().toLowerCase(), label]));
  return images.map((image) =>
    image.category === null ? null : (byWord.get(image.category.trim().toLowerCase()) ?? null),
  );
}
