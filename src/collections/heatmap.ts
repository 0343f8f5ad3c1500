/**
 * A neuron's spatial map over an image, as the model saw it: the image is decoded and cropped as
 * for the model (shorter side to S, centre crop S × S), the trunk gives the neuron's h × w map,
 * its positive part is scaled to [0, 1] by its maximum, resized to S × S (bilinear) and laid over
 * the crop in red (alpha up to 0.7). Computed on demand, then cached.
 *
 * Decoding goes through the caller's decode bound (`decode`: the Encoders' one turn-taking, set by
 * IMAGE_DECODE_CONCURRENCY, the same that bounds every image route), and the decoded image lives
 * only inside its turn: the S × S crop is what comes out of it.
 *
 * The cache (app.cache: Redis or the in-memory LRU) holds the PNG under the model's sha256, the
 * image bytes' sha256 and the neuron: the picture is a function of those alone, so an image shared
 * by two collections, or uploaded again, is one entry. Identical requests in flight share one run.
 */
import sharp from 'sharp';
import { cacheKey, type BinaryCache } from '../cache/index.js';
import {
  centerCrop,
  resizeShortestSide,
  toPixelValues,
  type PreprocessSpec,
  type RgbImage,
} from '../clip/image.js';
import type { BoundedDecode } from '../clip/encoders.js';
import { badRequest } from '../errors.js';
import type { CollectionModel } from './builder.js';

export interface HeatmapModel extends CollectionModel {
  readonly sha256: string;
  readonly neuronGrid: readonly [number, number];
}

export type { BoundedDecode } from '../clip/encoders.js';

export interface Heatmap {
  png: Buffer;
  /** The map's maximum (its scale). */
  max: number;
  /** Whether the PNG came from the cache. */
  cached: boolean;
}

/** Cache operation name; versioned with the format of the value (8 bytes of max, then the PNG). */
const OPERATION = 'heatmap.v1';

export class NeuronHeatmaps {
  private readonly inFlight = new Map<string, Promise<Omit<Heatmap, 'cached'>>>();

  constructor(
    private readonly model: HeatmapModel,
    private readonly spec: PreprocessSpec,
    private readonly decode: BoundedDecode,
    private readonly cache?: BinaryCache,
  ) {}

  /** The heatmap PNG of `neuron` over the image `bytes` (whose sha256 is `sha256`). */
  async render(bytes: Uint8Array, sha256: string, neuron: number): Promise<Heatmap> {
    const count = this.model.neuronCount;
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= count) {
      throw badRequest(`neuron ${neuron} is out of range (0 to ${count - 1})`);
    }
    const key = cacheKey(this.model.sha256, OPERATION, sha256, neuron);
    const stored = await this.cache?.getBuffer(key);
    if (stored !== undefined && stored.length > 8) {
      return { png: stored.subarray(8), max: stored.readDoubleLE(0), cached: true };
    }
    let running = this.inFlight.get(key);
    if (!running) {
      running = this.compute(bytes, neuron).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, running);
      const { png, max } = await running;
      const value = Buffer.alloc(8 + png.length);
      value.writeDoubleLE(max, 0);
      png.copy(value, 8);
      // Fire-and-forget: the answer does not wait for the cache write, which never rejects.
      void this.cache?.setBuffer(key, value);
    }
    return { ...(await running), cached: false };
  }

  private async compute(bytes: Uint8Array, neuron: number): Promise<{ png: Buffer; max: number }> {
    const S = this.spec.imageSize;
    // The crop the model sees is also the picture the map is laid over: resized once.
    const crop = await this.decode(bytes, (decoded) => centerCrop(resizeShortestSide(decoded, S), S));
    const [maps] = await this.model.neuronMaps([toPixelValues(crop, this.spec)]);
    const [h, w] = this.model.neuronGrid;
    const cells = maps.subarray(neuron * h * w, (neuron + 1) * h * w);
    return { png: await overlay(crop, cells, h, w), max: Math.max(0, ...cells) };
  }
}

/** The map's positive part, scaled by its maximum, resized bilinearly to the crop and laid over it in red. */
export async function overlay(crop: RgbImage, cells: Float32Array, h: number, w: number): Promise<Buffer> {
  const S = crop.width;
  let max = 0;
  for (const v of cells) max = Math.max(max, v);
  const heat = Buffer.alloc(h * w);
  cells.forEach((v, i) => (heat[i] = max > 0 ? Math.round((255 * Math.max(0, v)) / max) : 0));
  const scaled = await sharp(heat, { raw: { width: w, height: h, channels: 1 } })
    .resize(S, crop.height, { kernel: 'linear', fit: 'fill' })
    // One channel out, as in: sharp would write a grey image as sRGB, three bytes a pixel.
    .toColourspace('b-w')
    .raw()
    .toBuffer();
  const out = Buffer.alloc(S * crop.height * 3);
  for (let p = 0; p < S * crop.height; p++) {
    const alpha = (0.7 * scaled[p]) / 255;
    out[3 * p] = Math.round(crop.data[3 * p] * (1 - alpha) + 255 * alpha);
    out[3 * p + 1] = Math.round(crop.data[3 * p + 1] * (1 - alpha));
    out[3 * p + 2] = Math.round(crop.data[3 * p + 2] * (1 - alpha));
  }
  return sharp(out, { raw: { width: S, height: crop.height, channels: 3 } })
    .png()
    .toBuffer();
}
