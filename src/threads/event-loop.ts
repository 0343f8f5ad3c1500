/**
 * Handing the event loop back: for the few CPU-bound steps that stay on the main thread (the word
 * index build's bookkeeping, its ridge fits), so that health checks and cached answers go on.
 * Heavier work runs on worker threads (worker-pool.ts) and needs none of this.
 */
export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
