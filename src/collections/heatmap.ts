/**
 * A neuron's spatial map over an image, as the model saw it: the image is decoded and cropped as
 * for the model (shorter side to S, centre crop S × S), the trunk gives the neuron's h × w map,
 * its positive part is scaled to [0, 1] by its maximum, resized to S × S (bilinear) and laid over
 * the crop in red (alpha up to 0.7). Computed on demand.
 */
import sharp from 'sharp';
import {
  centerCrop,
  decodeImage,
  resizeShortestSide,
  toPixelValues,
  type PreprocessSpec,
} from '../clip/image.js';
import type { CollectionModel } from './builder.js';

export interface HeatmapModel extends CollectionModel {
  readonly neuronGrid: readonly [number, number];
}

export async function neuronHeatmap(
  model: HeatmapModel,
  spec: PreprocessSpec,
  bytes: Uint8Array,
  neuron: number,
  maxPixels: number,
): Promise<{ png: Buffer; max: number }> {
  const decoded = await decodeImage(bytes, { maxPixels });
  const S = spec.imageSize;
  // The crop the model sees is also the picture the map is laid over: resized once.
  const crop = centerCrop(resizeShortestSide(decoded, S), S);
  const [maps] = await model.neuronMaps([toPixelValues(crop, spec)]);
  const [h, w] = model.neuronGrid;
  const cells = maps.subarray(neuron * h * w, (neuron + 1) * h * w);
  let max = 0;
  for (const v of cells) max = Math.max(max, v);
  const heat = Buffer.alloc(h * w);
  cells.forEach((v, i) => (heat[i] = max > 0 ? Math.round((255 * Math.max(0, v)) / max) : 0));
  const scaled = await sharp(heat, { raw: { width: w, height: h, channels: 1 } })
    .resize(S, S, { kernel: 'linear', fit: 'fill' })
    .raw()
    .toBuffer();
  const out = Buffer.alloc(S * S * 3);
  for (let p = 0; p < S * S; p++) {
    const alpha = (0.7 * scaled[p]) / 255;
    out[3 * p] = Math.round(crop.data[3 * p] * (1 - alpha) + 255 * alpha);
    out[3 * p + 1] = Math.round(crop.data[3 * p + 1] * (1 - alpha));
    out[3 * p + 2] = Math.round(crop.data[3 * p + 2] * (1 - alpha));
  }
  const png = await sharp(out, { raw: { width: S, height: S, channels: 3 } })
    .png()
    .toBuffer();
  return { png, max };
}
