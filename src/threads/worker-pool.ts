/**
 * Work on worker threads, for CPU-bound steps that would otherwise hold the event loop (onnxruntime
 * runs, sparse fits, atlases, rastering words): a request goes to one of `size` threads running
 * `module` (which answers with serveRequests, serve.ts) and its answer comes back as a promise.
 *
 * Threads start on first use and hold the process open only while they have work. A thread that
 * dies fails its pending requests and is replaced on the next one; a new thread first gets the
 * pool's prelude (the requests that set up its state, such as loading sessions). Under tsx (the .ts
 * sources) each thread registers tsx's loader before importing its module.
 */
import { Worker, type TransferListItem } from 'node:worker_threads';
import { HttpError } from '../errors.js';
import type { Runner } from './in-process.js';
import type { Envelope, Reply } from './serve.js';

interface Thread {
  worker: Worker;
  pending: Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>;
}

export class WorkerPool<Request, Response> implements Runner<Request, Response> {
  private readonly threads: (Thread | undefined)[];
  private nextId = 0;
  private turn = 0;
  private closed = false;

  /**
   * `module`: the worker module's URL (see siblingModule). `prelude`: the requests every new thread
   * answers before any other (read when the thread starts; their answers are dropped).
   */
  constructor(
    private readonly module: URL,
    size = 1,
    private readonly prelude: () => readonly Request[] = () => [],
  ) {
    this.threads = Array.from({ length: Math.max(1, size) }, () => undefined);
  }

  run(request: Request, transfer: TransferListItem[] = []): Promise<Response> {
    if (this.closed) return Promise.reject(new Error('the worker pool was closed'));
    const slot = this.turn++ % this.threads.length;
    const thread = (this.threads[slot] ??= this.start(slot));
    return this.post(thread, request, transfer);
  }

  async close(): Promise<void> {
    this.closed = true;
    const running = this.threads.filter((thread): thread is Thread => thread !== undefined);
    this.threads.fill(undefined);
    for (const thread of running) fail(thread, new Error('the worker pool was closed'));
    // A stopping thread's handle no longer holds the process open, and without something else
    // pending the process would exit before terminate() resolves (and before whoever awaits close).
    const hold = setInterval(() => undefined, 60_000);
    try {
      await Promise.all(running.map((thread) => thread.worker.terminate()));
    } finally {
      clearInterval(hold);
    }
  }

  private post(thread: Thread, request: Request, transfer: TransferListItem[] = []): Promise<Response> {
    const id = this.nextId++;
    return new Promise<Response>((resolve, reject) => {
      thread.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      thread.worker.ref();
      const envelope: Envelope<Request> = { id, request };
      thread.worker.postMessage(envelope, transfer);
    });
  }

  private start(slot: number): Thread {
    const thread: Thread = { worker: startWorker(this.module), pending: new Map() };
    thread.worker.unref();
    // Answered first (a thread takes its requests in order); a failure shows in what follows.
    for (const request of this.prelude()) void this.post(thread, request).catch(() => undefined);
    thread.worker.on('message', ({ id, value, error }: Reply<Response>) => {
      const waiting = thread.pending.get(id);
      thread.pending.delete(id);
      if (thread.pending.size === 0) thread.worker.unref();
      if (!waiting) return;
      if (error) waiting.reject(new HttpError(error.statusCode, error.message));
      else waiting.resolve(value);
    });
    const retire = (error: Error) => {
      if (this.threads[slot] === thread) this.threads[slot] = undefined;
      fail(thread, error);
    };
    thread.worker.on('error', retire);
    thread.worker.on('exit', (code) => retire(new Error(`a worker thread stopped (exit code ${code})`)));
    return thread;
  }
}

function fail(thread: Thread, error: Error): void {
  for (const { reject } of thread.pending.values()) reject(error);
  thread.pending.clear();
}

function startWorker(module: URL): Worker {
  if (!module.pathname.endsWith('.ts')) return new Worker(module);
  // tsx is resolved here, from this file: an eval'd thread would resolve it from the working
  // directory, which need not be the project's.
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(module.href)}); });`;
  return new Worker(code, { eval: true });
}

/** The URL of a worker module beside `caller` (its import.meta.url), .ts under tsx and .js when built. */
export function siblingModule(caller: string, name: string): URL {
  return new URL(`./${name}${caller.endsWith('.ts') ? '.ts' : '.js'}`, caller);
}
