/**
 * Rastering on worker threads for the word-index build: each batch of words is drawn and
 * normalised by one of `size` threads (render-thread.ts), so the main thread only feeds the trunk
 * and several batches are drawn at once on machines with spare cores.
 */
import type { PreprocessSpec } from '../clip/image.js';
import { siblingModule, WorkerPool } from '../threads/worker-pool.js';
import type { RenderRequest, RenderedBatch } from './render-thread.js';

export type { RenderedBatch } from './render-thread.js';

export class RenderPool {
  private readonly pool: WorkerPool<RenderRequest, RenderedBatch>;

  constructor(
    private readonly spec: PreprocessSpec,
    size: number,
  ) {
    this.pool = new WorkerPool(siblingModule(import.meta.url, 'render-thread'), size);
  }

  /** Pixel values [count, 3, S, S] of `words` and the positions the rasteriser refused. */
  render(words: readonly string[]): Promise<RenderedBatch> {
    return this.pool.run({ words: [...words], spec: this.spec });
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
