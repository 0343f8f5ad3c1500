/**
 * A render thread of the word-index build (see render-pool.ts): rasters words and writes their
 * pixel values into one buffer, which goes back to the main thread without a copy.
 */
import { pixelValuesOf, toPixelValues, type PreprocessSpec } from '../clip/image.js';
import { rasterizeText } from '../clip/raster.js';
import { serveRequests } from '../threads/serve.js';

export interface RenderRequest {
  words: string[];
  spec: PreprocessSpec;
}

export interface RenderedBatch {
  pixels: Float32Array;
  /** Positions (in `words`) the rasteriser refused. */
  failed: number[];
}

function render({ words, spec }: RenderRequest): RenderedBatch {
  const size = 3 * spec.imageSize * spec.imageSize;
  const pixels = new Float32Array(words.length * size);
  const failed: number[] = [];
  words.forEach((word, i) => {
    try {
      const image = rasterizeText(word, spec.imageSize);
      const square = image.width === spec.imageSize && image.height === spec.imageSize;
      if (square) toPixelValues(image, spec, pixels, i * size);
      else pixels.set(pixelValuesOf(image, spec), i * size);
    } catch {
      failed.push(i);
    }
  });
  return { pixels, failed };
}

serveRequests(render, ({ pixels }) => [pixels.buffer as ArrayBuffer]);
