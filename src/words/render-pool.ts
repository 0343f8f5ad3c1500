/**
 * Rastering on worker threads for the word-index build: each batch of words is drawn and
 * normalised by one of `size` workers (render-worker.ts), so the main thread only feeds the trunk
 * and several batches are drawn at once on machines with spare cores. Under tsx (the .ts sources)
 * each worker registers tsx's loader before importing the worker module.
 */
import { Worker } from 'node:worker_threads';
import type { PreprocessSpec } from '../clip/image.js';
import type { RenderRequest, RenderResponse } from './render-worker.js';

export interface RenderedBatch {
  pixels: Float32Array;
  failed: number[];
}

function startWorker(): Worker {
  const source = import.meta.url.endsWith('.ts') ? 'render-worker.ts' : 'render-worker.js';
  const url = new URL(`./${source}`, import.meta.url);
  if (source.endsWith('.js')) return new Worker(url);
  const code = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(code, { eval: true });
}

export class RenderPool {
  private readonly workers: Worker[];
  private readonly pending = new Map<
    number,
    { resolve: (batch: RenderedBatch) => void; reject: (e: Error) => void }
  >();
  private nextId = 0;
  private turn = 0;

  constructor(
    private readonly spec: PreprocessSpec,
    size: number,
  ) {
    this.workers = Array.from({ length: Math.max(1, size) }, () => {
      const worker = startWorker();
      worker.on('message', ({ id, pixels, failed }: RenderResponse) => {
        this.pending.get(id)?.resolve({ pixels, failed });
        this.pending.delete(id);
      });
      worker.on('error', (error) => this.failAll(error));
      return worker;
    });
  }

  /** Pixel values [count, 3, S, S] of `words` and the positions the rasteriser refused. */
  render(words: readonly string[]): Promise<RenderedBatch> {
    const id = this.nextId++;
    const worker = this.workers[this.turn++ % this.workers.length];
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const request: RenderRequest = { id, words: [...words], spec: this.spec };
      worker.postMessage(request);
    });
  }

  async close(): Promise<void> {
    this.failAll(new Error('the render pool was closed'));
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private failAll(error: Error): void {
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
  }
}
