/**
 * Scores of every row of a collection's images × dim matrix against one query vector, and the top
 * k, on the thread of retrieval-thread.ts (or the calling thread): cosine over the image embeddings
 * (embeddings.f32), dot product or cosine over the neuron means (means.f32) for a direction.
 *
 * Embeddings of recently searched collections stay in memory (`keep`), each as one Float32Array
 * with the inverse norm of every row, within a byte budget (least recently used dropped first).
 * A query is one Gemm of onnxruntime (MLAS, SIMD: scores [1, N] = q [1, D] · Eᵀ, the matrix wrapped
 * as an input tensor, not copied), then the scores are scaled by the inverse norms (cosine) and the
 * top k selected (stats.ts topK). A matrix not kept (the means, or embeddings over the budget) is
 * read from its file in chunks of 8 MiB, one Gemm each.
 *
 * Committed rows never change (store.ts), so a collection that grew since it was loaded only has
 * its new rows read. For cosine, rows that are all zeros get no score (NaN, never ranked).
 */
import { open, type FileHandle } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { oneNodeModel } from '../clip/onnx-graph.js';
import { notFound } from '../errors.js';
import { dotRows } from '../words/matrix-product.js';
import { topK } from './stats.js';
import { float32sOf, readAt } from './store.js';

export interface ScoreRequest {
  /** The matrix file (images × dim little-endian Float32). */
  file: string;
  /** Identity of the file's rows (its path and the collection's creation time): a re-created one differs. */
  key: string;
  /** Hold the rows in memory for the next queries (within the budget). */
  keep: boolean;
  measure: 'cosine' | 'dot';
  /** Rows to search: the manifest's indexed images. */
  rows: number;
  dim: number;
  query: Float32Array;
  k: number;
}

export interface ScoreAnswer {
  ids: Uint32Array;
  scores: Float32Array;
  /** Whether the collection's embeddings are (now) held in memory. */
  resident: boolean;
}

interface Entry {
  values: Float32Array;
  inverseNorms: Float32Array;
  rows: number;
  capacity: number;
  dim: number;
}

/** Rows read per file read while loading or scanning. */
const CHUNK_BYTES = 8 * 1024 * 1024;

/** The one-node graph Y [K, N] = Gemm(Q [K, D], E [N, D], transB). */
function gemmModel(): Uint8Array {
  return oneNodeModel({
    name: 'collection_cosine',
    opType: 'Gemm',
    inputs: [
      { name: 'Q', dims: ['K', 'D'] },
      { name: 'E', dims: ['N', 'D'] },
    ],
    outputs: [{ name: 'Y', dims: ['K', 'N'] }],
    attributes: { transB: 1 },
  });
}

export class EmbeddingIndex {
  private readonly entries = new Map<string, Entry>();
  private session: Promise<ort.InferenceSession | undefined> | undefined;

  /**
   * `memoryBytes`: the most bytes of embeddings held (0: none, every query scans the file).
   * `engine`: "ort" (onnxruntime's Gemm, falling back to JavaScript if it cannot be created) or "js".
   */
  constructor(
    private readonly memoryBytes: number,
    private readonly engine: 'ort' | 'js' = 'ort',
  ) {}

  /** Bytes held now. */
  get heldBytes(): number {
    let bytes = 0;
    for (const entry of this.entries.values()) bytes += entry.capacity * (entry.dim + 1) * 4;
    return bytes;
  }

  async score(request: ScoreRequest): Promise<ScoreAnswer> {
    const { rows, dim, query, k } = request;
    if (query.length !== dim) throw new Error(`query has ${query.length} values; the rows have ${dim}`);
    const cosine = request.measure === 'cosine';
    let norm = 0;
    for (const v of query) norm += v * v;
    const inverseQuery = norm > 0 ? 1 / Math.sqrt(norm) : NaN;
    const entry = request.keep ? await this.resident(request) : undefined;
    let scores: Float32Array;
    if (entry) {
      scores = await this.product(entry.values.subarray(0, rows * dim), rows, dim, query);
      if (cosine) scale(scores, entry.inverseNorms, inverseQuery);
    } else {
      scores = new Float32Array(rows);
      await this.scan(request.file, 0, rows, dim, async (values, start, count) => {
        const part = await this.product(values, count, dim, query);
        if (cosine) scale(part, inverseNormsOf(values, count, dim), inverseQuery);
        scores.set(part, start);
      });
    }
    const ids = topK(scores, k);
    return {
      ids: Uint32Array.from(ids),
      scores: Float32Array.from(ids, (id) => scores[id]),
      resident: entry !== undefined,
    };
  }

  /** Drops every collection's embeddings. */
  clear(): void {
    this.entries.clear();
  }

  async close(): Promise<void> {
    this.entries.clear();
    const session = await this.session;
    this.session = undefined;
    await session?.release();
  }

  /** The collection's rows in memory (loaded or extended here), or undefined when over the budget. */
  private async resident(request: ScoreRequest): Promise<Entry | undefined> {
    const { key, rows, dim, file } = request;
    const bytesOf = (capacity: number) => capacity * (dim + 1) * 4;
    let entry = this.entries.get(key);
    if (entry && entry.dim !== dim) {
      this.entries.delete(key);
      entry = undefined;
    }
    if (entry && entry.rows >= rows) {
      this.touch(key, entry);
      return entry;
    }
    const have = entry?.rows ?? 0;
    let capacity = entry?.capacity ?? 0;
    if (rows > capacity) capacity = entry ? Math.max(rows, Math.ceil(capacity * 1.5)) : rows;
    if (bytesOf(rows) > this.memoryBytes) {
      this.entries.delete(key);
      return undefined;
    }
    if (bytesOf(capacity) > this.memoryBytes) capacity = rows;
    // Room for this collection: the least recently used others go first.
    this.entries.delete(key);
    for (const [other] of this.entries) {
      if (this.heldBytes + bytesOf(capacity) <= this.memoryBytes) break;
      this.entries.delete(other);
    }
    if (this.heldBytes + bytesOf(capacity) > this.memoryBytes) return undefined;
    let values = entry?.values;
    let inverseNorms = entry?.inverseNorms;
    if (!values || !inverseNorms || capacity > entry!.capacity) {
      const grown = new Float32Array(capacity * dim);
      const grownNorms = new Float32Array(capacity);
      if (values && inverseNorms) {
        grown.set(values.subarray(0, have * dim));
        grownNorms.set(inverseNorms.subarray(0, have));
      }
      values = grown;
      inverseNorms = grownNorms;
    }
    const into = values;
    const norms = inverseNorms;
    await this.scan(file, have, rows, dim, (chunk, start, count) => {
      into.set(chunk, start * dim);
      norms.set(inverseNormsOf(chunk, count, dim), start);
    });
    const loaded: Entry = { values, inverseNorms, rows, capacity, dim };
    this.entries.set(key, loaded);
    return loaded;
  }

  private touch(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
  }

  /** Rows [from, to) of the file in chunks. */
  private async scan(
    file: string,
    from: number,
    to: number,
    dim: number,
    visit: (values: Float32Array, start: number, count: number) => void | Promise<void>,
  ): Promise<void> {
    if (to <= from) return;
    const rowBytes = dim * 4;
    const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw notFound('the collection was not found (deleted while it was read)');
      }
      throw error;
    }
    try {
      for (let row = from; row < to; row += perChunk) {
        const count = Math.min(perChunk, to - row);
        const bytes = await readAt(handle, row * rowBytes, count * rowBytes);
        if (bytes.length < count * rowBytes) throw new Error(`${file} is short`);
        await visit(float32sOf(bytes), row, count);
      }
    } finally {
      await handle.close();
    }
  }

  /** E [rows, dim] · q. */
  private async product(
    values: Float32Array,
    rows: number,
    dim: number,
    query: Float32Array,
  ): Promise<Float32Array> {
    const session = await this.gemm();
    if (!session) return dotRows(values, rows, dim, query);
    const outputs = await session.run({
      Q: new ort.Tensor('float32', query, [1, dim]),
      E: new ort.Tensor('float32', values, [rows, dim]),
    });
    return outputs.Y.data as Float32Array;
  }

  private gemm(): Promise<ort.InferenceSession | undefined> {
    if (this.engine === 'js') return Promise.resolve(undefined);
    // One intra-op thread: this thread is the search's; the encoders have their own.
    this.session ??= ort.InferenceSession.create(gemmModel(), {
      executionProviders: ['cpu'],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
    }).catch(() => undefined);
    return this.session;
  }
}

/** 1 / |row| for each row (NaN for a zero row), accumulated in double precision. */
export function inverseNormsOf(values: Float32Array, rows: number, dim: number): Float32Array {
  const out = new Float32Array(rows);
  for (let r = 0, base = 0; r < rows; r++, base += dim) {
    let squares = 0;
    for (let j = 0; j < dim; j++) squares += values[base + j] * values[base + j];
    out[r] = squares > 0 ? 1 / Math.sqrt(squares) : NaN;
  }
  return out;
}

function scale(scores: Float32Array, inverseNorms: Float32Array, inverseQuery: number): void {
  for (let i = 0; i < scores.length; i++) scores[i] *= inverseNorms[i] * inverseQuery;
}
