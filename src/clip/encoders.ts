/**
 * The model's encoders with the cache in front: text embeddings are cached per (model, token ids),
 * so a prompt is run through the text encoder once however many routes ask for it, and texts that
 * differ only in what the tokenizer normalises away (case, spacing, entities) share one entry.
 */
import type { BinaryCache } from '../cache/index.js';
import { cacheKey } from '../cache/index.js';
import type { ClipModel, ImageEncoding, TextAttribution } from './clip-model.js';
import { decodeImage, pixelValuesOf, type RgbImage } from './image.js';
import { Semaphore } from './semaphore.js';

export interface ImageDecoding {
  /** Most width × height of an image (MAX_IMAGE_PIXELS). */
  maxPixels?: number;
  /** Images decoded and resized at once (IMAGE_DECODE_CONCURRENCY); the others wait. */
  concurrency?: number;
}

/** Runs `use` on the decoded bytes while they hold a turn of a decode bound; the pixels should not outlive it. */
export type BoundedDecode = <T>(bytes: Uint8Array, use: (image: RgbImage) => T | Promise<T>) => Promise<T>;

/** Decoding under `decodes`: at most its limit of images decoded (and alive) at once. */
export function boundedDecode(decodes: Semaphore, maxPixels?: number): BoundedDecode {
  return (bytes, use) => decodes.run(async () => use(await decodeImage(bytes, { maxPixels })));
}

export class Encoders {
  /** Each image lives decoded (width × height × 3 bytes and more) only while it holds a turn here. */
  readonly decodes: Semaphore;
  /** Decoding under `decodes` (withDecoded), for the paths that take a BoundedDecode. */
  readonly decode: BoundedDecode;

  constructor(
    readonly model: ClipModel,
    private readonly cache: BinaryCache,
    decoding: ImageDecoding = {},
  ) {
    this.decodes = new Semaphore(decoding.concurrency ?? 2);
    this.decode = boundedDecode(this.decodes, decoding.maxPixels);
  }

  /** Unnormalised text embeddings [D], one per text, in order. */
  textEmbeddings(texts: readonly string[]): Promise<Float32Array[]> {
    return this.tokenEmbeddings(texts.map((text) => this.model.tokenizer.encode(text).ids));
  }

  /** The same for texts already tokenized (rows of ids with start and end tokens). */
  async tokenEmbeddings(rows: readonly (readonly number[])[]): Promise<Float32Array[]> {
    const keys = rows.map((ids) => this.textKey(ids));
    const cached = await Promise.all(keys.map((key) => this.cache.getVector(key)));
    const missing = rows.flatMap((_, i) => (cached[i] === undefined ? [i] : []));
    if (missing.length > 0) {
      const computed = await this.model.embedTokenRows(missing.map((i) => rows[i]));
      missing.forEach((index, j) => {
        cached[index] = computed[j];
        // Fire-and-forget: the answer does not wait for the cache write, which never rejects.
        void this.cache.setVector(keys[index], computed[j]);
      });
    }
    return cached as Float32Array[];
  }

  /**
   * t and W·t for one tokenized prompt, in one run of the text graph chained to W·t; t joins the
   * text-embedding cache like any other, so routes that also want t find it there.
   */
  async tokenAttribution(ids: readonly number[]): Promise<TextAttribution> {
    const [result] = await this.model.textAttributions([ids]);
    // Fire-and-forget, as above: the write never rejects and nobody waits for it.
    void this.cache.setVector(this.textKey(ids), result.embedding);
    return result;
  }

  private textKey(ids: readonly number[]): string {
    return cacheKey(this.model.sha256, 'text_embeds', ids.join(','));
  }

  /**
   * Runs `use` on the decoded image while it holds a turn of `decodes`: the one bound on images
   * decoded at once (IMAGE_DECODE_CONCURRENCY) for every path that decodes in this process (the
   * image routes here, the collections' heatmaps and builds). The decoded pixels should not outlive `use`.
   */
  withDecoded<T>(bytes: Uint8Array, use: (image: RgbImage) => T | Promise<T>): Promise<T> {
    return this.decode(bytes, use);
  }

  /** Decode, preprocess and encode one image (PNG, JPEG, WebP or GIF bytes). */
  async imageEncoding(bytes: Uint8Array): Promise<ImageEncoding> {
    const { manifest } = this.model.directory;
    const spec = { imageSize: manifest.image_size, mean: manifest.mean, std: manifest.std };
    const pixels = await this.withDecoded(bytes, (image) => pixelValuesOf(image, spec));
    const [encoding] = await this.model.encodeImages([pixels]);
    return encoding;
  }
}
