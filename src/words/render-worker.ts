/**
 * A render thread of the word-index build (see render-pool.ts): rasters words and writes their
 * pixel values into one buffer, which goes back to the main thread without a copy.
 */
import { parentPort } from 'node:worker_threads';
import { pixelValuesOf, toPixelValues, type PreprocessSpec } from '../clip/image.js';
import { rasterizeText } from '../clip/raster.js';

export interface RenderRequest {
  id: number;
  words: string[];
  spec: PreprocessSpec;
}

export interface RenderResponse {
  id: number;
  pixels: Float32Array;
  /** Positions (in `words`) the rasteriser refused. */
  failed: number[];
}

const port = parentPort;
if (port) {
  port.on('message', ({ id, words, spec }: RenderRequest) => {
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
    const response: RenderResponse = { id, pixels, failed };
    port.postMessage(response, [pixels.buffer]);
  });
}
