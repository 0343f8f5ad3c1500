/**
 * Micro-batching: rows submitted by concurrent requests are merged into one onnxruntime run.
 *
 * The first row of a batch waits at most `maxWaitMs` for company (with 0, rows submitted in the same
 * tick still share a batch); a batch never holds more than
 * `maxBatch` rows; at most `concurrency` runs are in flight, and rows that arrive while they run
 * queue up for the next batch (under load, batches fill by themselves). A failed run rejects only
 * the rows of that batch.
 */
export interface BatcherOptions<Row, Result> {
  maxBatch: number;
  maxWaitMs: number;
  concurrency?: number;
  run: (rows: Row[]) => Promise<Result[]>;
  /** Called after every run with the batch size and its duration (for metrics and benchmarks). */
  onBatch?: (size: number, milliseconds: number) => void;
}

interface Pending<Row, Result> {
  row: Row;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

export class MicroBatcher<Row, Result> {
  private readonly queue: Pending<Row, Result>[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private running = 0;
  private readonly concurrency: number;

  constructor(private readonly options: BatcherOptions<Row, Result>) {
    this.concurrency = options.concurrency ?? 1;
  }

  submit(row: Row): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.queue.push({ row, resolve, reject });
      this.schedule();
    });
  }

  submitAll(rows: readonly Row[]): Promise<Result[]> {
    return Promise.all(rows.map((row) => this.submit(row)));
  }

  /** Rows waiting for a run. */
  get depth(): number {
    return this.queue.length;
  }

  /** Whether rows are waiting or a run is in flight. */
  get busy(): boolean {
    return this.queue.length > 0 || this.running > 0;
  }

  private schedule(): void {
    if (this.running >= this.concurrency) return; // the end of a run schedules the next batch
    if (this.queue.length >= this.options.maxBatch) {
      this.flush();
    } else if (this.timer === undefined) {
      // Even without a wait, rows submitted in the same tick share a batch.
      const wait = this.options.maxWaitMs;
      this.timer = wait === 0 ? setImmediate(() => this.flush()) : setTimeout(() => this.flush(), wait);
    }
  }

  private flush(): void {
    clearTimeout(this.timer as NodeJS.Timeout);
    clearImmediate(this.timer as NodeJS.Immediate);
    this.timer = undefined;
    while (this.running < this.concurrency && this.queue.length > 0) {
      // Fire-and-forget: runBatch settles each row's promise itself and never rejects.
      void this.runBatch(this.queue.splice(0, this.options.maxBatch));
    }
  }

  private async runBatch(batch: Pending<Row, Result>[]): Promise<void> {
    this.running += 1;
    const started = performance.now();
    try {
      const results = await this.options.run(batch.map((pending) => pending.row));
      if (results.length !== batch.length) {
        throw new Error(`batch run returned ${results.length} results for ${batch.length} rows`);
      }
      batch.forEach((pending, i) => pending.resolve(results[i]));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    } finally {
      this.running -= 1;
      this.options.onBatch?.(batch.length, performance.now() - started);
      if (this.queue.length > 0) this.flush();
    }
  }
}
