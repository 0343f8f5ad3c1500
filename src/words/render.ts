/**
 * A word as the model sees it: rastered at the model's input size (src/clip/raster.ts) and
 * normalised to pixel values [3, S, S] (src/clip/image.ts), written straight into a batch buffer.
 */
import type { ClipModel } from '../clip/clip-model.js';
import { pixelValuesOf, toPixelValues, type PreprocessSpec } from '../clip/image.js';
import { rasterizeText } from '../clip/raster.js';

/** Writes the pixel values of `word` at out[offset … offset + 3·S·S). */
export type WordRenderer = (word: string, out: Float32Array, offset: number) => void | Promise<void>;

export function modelRenderer(model: Pick<ClipModel, 'directory'>): WordRenderer {
  const { image_size: imageSize, mean, std } = model.directory.manifest;
  const spec: PreprocessSpec = { imageSize, mean, std };
  return (word, out, offset) => {
    const image = rasterizeText(word, imageSize);
    if (image.width === imageSize && image.height === imageSize) toPixelValues(image, spec, out, offset);
    else out.set(pixelValuesOf(image, spec), offset);
  };
}
