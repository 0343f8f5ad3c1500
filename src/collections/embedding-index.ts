/**
 * Scores of every row of a collection's images × dim matrix against one query vector, and the top
 * k, on the thread of retrieval-thread.ts (or the calling thread): cosine over the image embeddings
 * (embeddings.f32), dot product or cosine over the neuron means (means.f32) for a direction.
 *
 * Embeddings of recently searched collections stay in memory (`keep`) within a byte budget (least
 * recently used dropped first), as Float32 and as 8-bit codes with a scale per row: a query is one
 * integer product of onnxruntime (MatMulInteger, MLAS: a quarter of the bytes a Float32 product
 * reads), which bounds every row's cosine; only the rows that can be in the top k are then scored
 * exactly from their Float32 values, so the answer is the exact top k (see quantisedCosine). With
 * the engine "js", the Float32 rows alone are held and scored by a JavaScript loop. A matrix not kept (the means, or embeddings
 * over the budget) is read from its file in chunks of 8 MiB, one Gemm each (scores [1, N] =
 * q [1, D] · Eᵀ, the chunk wrapped as an input tensor, not copied).
 *
 * Committed rows never change (store.ts), so a collection that grew since it was loaded only has
 * its new rows read. For cosine, rows that are all zeros get no score (NaN, never ranked). */
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
  /**
   * With the engine "ort", whether the Float32 rows are held beside their 8-bit codes (the
   * embeddings: the candidates are scored from memory) or only the codes (the neuron means, four
   * times larger: the candidates' rows are read from the file).
   */
  holdValues?: boolean;
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
  /** Rows scored in full (all of them, unless the 8-bit screen left fewer). */
  scored: number;
}

/**
 * The rows of a collection held in memory, and per row what scoring needs: the Float32 values
 * (unless only the codes are held) and the inverse norm; with the engine "ort" also each row e as
 * 8-bit codes q = round(e / s) (stored + 128) with its scale s, and the norms of the error
 * |e − s·q| and of s·q.
 */
interface Entry {
  dim: number;
  rows: number;
  capacity: number;
  codes?: Uint8Array;
  scales?: Float32Array;
  errors?: Float32Array;
  codeNorms?: Float32Array;
  values?: Float32Array;
  inverseNorms: Float32Array;
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

/** The query's 8-bit codes' range, ±QUERY_CODE_MAX (see quantisedScores). */
const QUERY_CODE_MAX = 63;

/** Y [N, 1] = MatMulInteger(E [N, D] uint8, Q [D, 1] int8): the codes' products, exact in int32. */
function integerModel(): Uint8Array {
  return oneNodeModel({
    name: 'collection_codes',
    opType: 'MatMulInteger',
    inputs: [
      { name: 'E', dims: ['N', 'D'], type: 'uint8' },
      { name: 'Q', dims: ['D', 'K'], type: 'int8' },
    ],
    outputs: [{ name: 'Y', dims: ['N', 'K'], type: 'int32' }],
  });
}

/** Rows `count` × dim of `chunk` into the entry's codes from row `start` (see Entry). */
function quantise(chunk: Float32Array, count: number, dim: number, entry: Entry, start: number): void {
  const codes = entry.codes as Uint8Array;
  const scales = entry.scales as Float32Array;
  const errors = entry.errors as Float32Array;
  const codeNorms = entry.codeNorms as Float32Array;
  for (let r = 0, base = 0; r < count; r++, base += dim) {
    let maxAbs = 0;
    let squares = 0;
    for (let j = 0; j < dim; j++) {
      const v = chunk[base + j];
      maxAbs = Math.max(maxAbs, Math.abs(v));
      squares += v * v;
    }
    // The scale as stored (Float32), so that the codes and the bound use the same one.
    const s = maxAbs > 0 ? Math.fround(maxAbs / 127) : 1;
    let error = 0;
    let codeSquares = 0;
    const at = (start + r) * dim;
    for (let j = 0; j < dim; j++) {
      const code = Math.round(chunk[base + j] / s);
      codes[at + j] = code + 128;
      error += (chunk[base + j] - code * s) ** 2;
      codeSquares += (code * s) ** 2;
    }
    scales[start + r] = s;
    errors[start + r] = Math.sqrt(error);
    codeNorms[start + r] = Math.sqrt(codeSquares);
    entry.inverseNorms[start + r] = squares > 0 ? 1 / Math.sqrt(squares) : NaN;
  }
}

export class EmbeddingIndex {
  private readonly entries = new Map<string, Entry>();
  private session: Promise<ort.InferenceSession | undefined> | undefined;
  private integerSession: Promise<ort.InferenceSession | undefined> | undefined;

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
    for (const entry of this.entries.values()) {
      bytes += this.bytesOf(entry.capacity, entry.dim, entry.values !== undefined);
    }
    return bytes;
  }

  /** Bytes a matrix of `capacity` rows of `dim` takes in memory (with its Float32 rows or not). */
  private bytesOf(capacity: number, dim: number, values: boolean): number {
    if (this.engine !== 'ort') return capacity * (dim + 1) * 4;
    return capacity * ((values ? 5 : 1) * dim + 16);
  }

  async score(request: ScoreRequest): Promise<ScoreAnswer> {
    const { rows, dim, query, k } = request;
    if (query.length !== dim) throw new Error(`query has ${query.length} values; the rows have ${dim}`);
    const cosine = request.measure === 'cosine';
    let norm = 0;
    for (const v of query) norm += v * v;
    const inverseQuery = norm > 0 ? 1 / Math.sqrt(norm) : NaN;
    const entry = request.keep ? await this.resident(request) : undefined;
    if (entry?.codes) {
      const exact = await this.quantisedScores(entry, request);
      if (exact) return { ...exact, resident: true };
    }
    let scores: Float32Array;
    if (entry?.values) {
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
      scored: rows,
    };
  }

  /**
   * Exact top k by cosine or dot product from the 8-bit codes: one integer product (onnxruntime's
   * MatMulInteger) gives every row's approximate product and a bound on its error,
   *
   *   |e·x − s·q·x̃| ≤ |e − s·q|·|x| + |s·q|·|x − x̃|      (x̃: the query's own 8-bit codes),
   *
   * (for cosine, both divided by |e|·|x|) so the k-th largest lower bound L is below the k-th
   * largest exact score, and only rows whose upper bound reaches L can be in the top k: those are
   * scored exactly (in double precision) from their Float32 values, held in memory or read from the
   * file. Undefined (the caller then scores every row) when too many rows are candidates.
   */
  private async quantisedScores(
    entry: Entry,
    request: ScoreRequest,
  ): Promise<Omit<ScoreAnswer, 'resident'> | undefined> {
    const { rows, dim, query, k } = request;
    const cosine = request.measure === 'cosine';
    const session = await this.integerProduct();
    if (!session) return undefined;
    const codes = entry.codes as Uint8Array;
    const scales = entry.scales as Float32Array;
    const errors = entry.errors as Float32Array;
    const codeNorms = entry.codeNorms as Float32Array;
    const { inverseNorms } = entry;
    let maxAbs = 0;
    let squares = 0;
    for (const v of query) {
      maxAbs = Math.max(maxAbs, Math.abs(v));
      squares += v * v;
    }
    const queryNorm = Math.sqrt(squares);
    if (!(queryNorm > 0)) return undefined;
    // The query's codes stay within ±63: onnxruntime's u8 × s8 product sums pairs of products in
    // 16 bits on CPUs without VNNI (AVX2's vpmaddubsw saturates at 32,767), and 2 × 255 × 63 fits
    // where 2 × 255 × 127 does not. With ±127 the products were wrong on such CPUs (an AMD EPYC
    // with AVX2 only) and the screen could drop rows of the true top k.
    const queryScale = maxAbs / QUERY_CODE_MAX;
    const queryCodes = new Int8Array(dim);
    let codeSum = 0;
    let queryError = 0;
    for (let j = 0; j < dim; j++) {
      const code = Math.round(query[j] / queryScale);
      queryCodes[j] = code;
      codeSum += code;
      queryError += (query[j] - code * queryScale) ** 2;
    }
    queryError = Math.sqrt(queryError);
    const outputs = await session.run({
      E: new ort.Tensor('uint8', codes.subarray(0, rows * dim), [rows, dim]),
      Q: new ort.Tensor('int8', queryCodes, [dim, 1]),
    });
    const products = outputs.Y.data as Int32Array;
    const approx = new Float64Array(rows);
    const bounds = new Float64Array(rows);
    const lower = new Float32Array(rows);
    const shift = 128 * codeSum; // the codes are stored + 128
    for (let i = 0; i < rows; i++) {
      const factor = cosine ? inverseNorms[i] / queryNorm : 1;
      approx[i] = scales[i] * queryScale * (products[i] - shift) * factor;
      // A margin for the bound's own rounding (its terms are stored as Float32).
      bounds[i] = (errors[i] * queryNorm + codeNorms[i] * queryError) * factor * 1.001 + 1e-6;
      lower[i] = approx[i] - bounds[i];
    }
    const floor = topK(lower, k);
    const L = floor.length === k ? lower[floor[k - 1]] : -Infinity;
    const candidates: number[] = [];
    for (let i = 0; i < rows; i++) if (approx[i] + bounds[i] >= L) candidates.push(i);
    if (candidates.length > Math.max(1024, rows / 16)) return undefined;
    const exact = new Float32Array(candidates.length);
    const scoreRow = (c: number, values: Float32Array, base: number) => {
      let dot = 0;
      for (let j = 0; j < dim; j++) dot += values[base + j] * query[j];
      exact[c] = cosine ? dot * (inverseNorms[candidates[c]] / queryNorm) : dot;
    };
    if (entry.values) {
      for (let c = 0; c < candidates.length; c++) scoreRow(c, entry.values, candidates[c] * dim);
    } else {
      await this.readRows(request.file, candidates, dim, (c, values) => scoreRow(c, values, 0));
    }
    // Candidates are in id order, so topK's ties (by position) are ties by the smaller id.
    const best = topK(exact, k);
    return {
      ids: Uint32Array.from(best, (c) => candidates[c]),
      scores: Float32Array.from(best, (c) => exact[c]),
      scored: candidates.length,
    };
  }

  /**
   * Reads the rows `ids` (ascending) of a rows × dim file, runs of neighbours in one read each, up
   * to 16 reads in flight (the candidates are scattered over the file).
   */
  private async readRows(
    file: string,
    ids: readonly number[],
    dim: number,
    visit: (index: number, values: Float32Array) => void,
  ): Promise<void> {
    const rowBytes = dim * 4;
    const runs: [number, number][] = [];
    for (let start = 0; start < ids.length;) {
      let end = start + 1;
      while (end < ids.length && ids[end] === ids[end - 1] + 1 && (end - start) * rowBytes < CHUNK_BYTES)
        end++;
      runs.push([start, end]);
      start = end;
    }
    const handle = await this.openRows(file);
    try {
      let next = 0;
      const reader = async () => {
        while (next < runs.length) {
          const [start, end] = runs[next++];
          const count = end - start;
          const bytes = await readAt(handle, ids[start] * rowBytes, count * rowBytes);
          if (bytes.length < count * rowBytes) throw new Error(`${file} is short`);
          const values = float32sOf(bytes);
          for (let r = 0; r < count; r++) visit(start + r, values.subarray(r * dim, (r + 1) * dim));
        }
      };
      await Promise.all(Array.from({ length: Math.min(16, runs.length) }, reader));
    } finally {
      await handle.close();
    }
  }

  /** Drops every collection's embeddings. */
  clear(): void {
    this.entries.clear();
  }

  async close(): Promise<void> {
    this.entries.clear();
    for (const pending of [this.session, this.integerSession]) await (await pending)?.release();
    this.session = undefined;
    this.integerSession = undefined;
  }

  /** The collection's rows in memory (loaded or extended here), or undefined when over the budget. */
  private async resident(request: ScoreRequest): Promise<Entry | undefined> {
    const { key, rows, dim, file } = request;
    // Float32 rows are held with the engine "js" (they are all it has), or when asked for.
    const holdValues = this.engine !== 'ort' || (request.holdValues ?? true);
    const bytesOf = (capacity: number) => this.bytesOf(capacity, dim, holdValues);
    let entry = this.entries.get(key);
    if (entry && (entry.dim !== dim || (entry.values !== undefined) !== holdValues)) {
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
    const grown =
      entry && capacity === entry.capacity ? entry : this.allocate(capacity, dim, entry, have, holdValues);
    const quantised = grown.codes !== undefined;
    await this.scan(file, have, rows, dim, (chunk, start, count) => {
      grown.values?.set(chunk, start * dim);
      if (quantised) quantise(chunk, count, dim, grown, start);
      else grown.inverseNorms.set(inverseNormsOf(chunk, count, dim), start);
    });
    grown.rows = rows;
    this.entries.set(key, grown);
    return grown;
  }

  /** Arrays for `capacity` rows, with the first `have` rows of `from` copied. */
  private allocate(
    capacity: number,
    dim: number,
    from: Entry | undefined,
    have: number,
    holdValues: boolean,
  ): Entry {
    const entry: Entry = { dim, rows: have, capacity, inverseNorms: new Float32Array(capacity) };
    if (this.engine === 'ort') {
      entry.codes = new Uint8Array(capacity * dim);
      entry.scales = new Float32Array(capacity);
      entry.errors = new Float32Array(capacity);
      entry.codeNorms = new Float32Array(capacity);
    }
    if (holdValues) entry.values = new Float32Array(capacity * dim);
    if (from) {
      entry.inverseNorms.set(from.inverseNorms.subarray(0, have));
      if (entry.codes && from.codes) entry.codes.set(from.codes.subarray(0, have * dim));
      if (entry.values && from.values) entry.values.set(from.values.subarray(0, have * dim));
      for (const name of ['scales', 'errors', 'codeNorms'] as const) {
        const source = from[name];
        if (entry[name] && source) entry[name].set(source.subarray(0, have));
      }
    }
    return entry;
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
    const handle = await this.openRows(file);
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

  private async openRows(file: string): Promise<FileHandle> {
    try {
      return await open(file, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw notFound('the collection was not found (deleted while it was read)');
      }
      throw error;
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

  private integerProduct(): Promise<ort.InferenceSession | undefined> {
    this.integerSession ??= ort.InferenceSession.create(integerModel(), {
      executionProviders: ['cpu'],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
    }).catch(() => undefined);
    return this.integerSession;
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
