/**
 * The part of a maximal-text search that does not depend on the neuron: the text embedding t_v of
 * every vocabulary token alone, the row [start, v, end]. The candidate pool (candidate-pool.ts)
 * ranks the vocabulary by f(t_v) = u·t_v/|t_v| for the search's u = Wᵀd, and only u depends on the
 * neuron or direction; the embeddings are the one pass over the vocabulary (49,406 rows of 3
 * tokens: about 98 s of a core at RN50-x4 size, a third of a default search), so they are computed
 * once per model and kept:
 *
 *  - in memory, once per process and model (a WeakMap on the ClipModel; concurrent searches
 *    share one pass in flight): V × D float32 (49,408 × 640 × 4 B = 126 MB at RN50-x4 size, 0.6 MB
 *    for the embedded model), allocated by the first search in the process and held while the
 *    model is. Float32 as the text encoder returns them, not halves or unit rows: the scores must
 *    be those of the per-search pass bit for bit (f computed by objectiveValue on these same
 *    floats), and 126 MB is small beside the model's own sessions in the same process (the
 *    RN50-x4 export is 722 MB);
 *  - in a file shared by processes and restarts, when a directory is given (the search jobs give
 *    DATA_DIR/max-text): `vocabulary-<model sha256>-<provider>.f32`, a JSON header (the model's
 *    sha256, the provider, V, D, the sha256 of the payload) and the rows, little-endian float32,
 *    written atomically (a temporary file, synced, renamed). It is read once into the process's
 *    array and trusted only if its header names this model (the manifest's sha256, which covers
 *    every file of the model directory) and provider, with the expected shape and a payload whose
 *    sha256 matches; anything else is recomputed and rewritten. Two processes that start at once
 *    may both compute it; the last rename wins, with the same bytes.
 *
 * Same numbers: the pass is the computation the per-search pass was (the same rows, submitted in
 * the same chunks to the model's text micro-batcher), and the scores are objectiveValue's
 * arithmetic on the same floats (the sum of squares per row is accumulated once, in the same
 * order), so a search gives the same texts and scores whether the embeddings were computed now,
 * read from the file or computed by another process (on the same execution provider: the provider
 * is part of the file's name).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { ClipModel } from '../clip/clip-model.js';

/** Rows per submission to the text encoder while embedding the vocabulary. */
export const VOCABULARY_CHUNK = 2048;

const FORMAT = 'max-text-vocabulary';
const VERSION = 1;

interface FileHeader {
  format: string;
  version: number;
  model: string;
  provider: string;
  vocabSize: number;
  embedDim: number;
  /** sha256 (hex) of the payload: V × D little-endian float32. */
  payloadSha256: string;
}

/** The embeddings of every vocabulary token alone, with what scoring needs. */
export interface VocabularyRows {
  vocabSize: number;
  embedDim: number;
  /** Row-major [V, D]: row v is t_v; the rows of the start and end tokens are zeros. */
  embeddings: Float32Array;
  /** Σ_k t_v[k]², accumulated in float64 in k order, as objectiveValue does. */
  squares: Float64Array;
  /** Where they came from in this process: computed, or read from the shared file. */
  source: 'computed' | 'file';
}

export interface VocabularyOptions {
  /** Where the shared file lives (created if missing); none: in memory only. */
  dir?: string;
  /** Told when the file cannot be read or written (the search goes on without it). */
  warn?: (message: string) => void;
}

/** One per model in a process (see vocabularyOf). */
export class VocabularyEmbeddings {
  private loading: Promise<VocabularyRows> | undefined;
  private dir: string | undefined;
  private warn: (message: string) => void;

  constructor(
    private readonly model: ClipModel,
    options: VocabularyOptions = {},
  ) {
    this.dir = options.dir;
    this.warn = options.warn ?? (() => undefined);
  }

  /** Shares the embeddings through a file in `dir` from the next load on (a search job sets it). */
  share(options: VocabularyOptions): this {
    if (options.dir !== undefined) this.dir = options.dir;
    if (options.warn) this.warn = options.warn;
    return this;
  }

  /** The shared file's path, or undefined without a directory. */
  get file(): string | undefined {
    if (this.dir === undefined) return undefined;
    return path.join(this.dir, `vocabulary-${this.model.sha256}-${this.model.executionProvider}.f32`);
  }

  /** Whether this process holds them already (loaded or loading). */
  get loaded(): boolean {
    return this.loading !== undefined;
  }

  /** The embeddings: from memory, else the shared file, else computed (and then written). */
  rows(): Promise<VocabularyRows> {
    if (!this.loading) {
      this.loading = this.load();
      // A failed pass (the model failed on a batch, say) is not remembered: the next search retries.
      this.loading.catch(() => (this.loading = undefined));
    }
    return this.loading;
  }

  /**
   * The single-token objective f(t_v) = u·t_v/|t_v| of every vocabulary id (start and end:
   * -Infinity), as float32: bit for bit what objectiveValue(u, t_v) gives, stored in float32.
   */
  async scores(u: Float32Array): Promise<Float32Array> {
    const { startId, endId } = this.model.tokenizer;
    const rows = await this.rows();
    const scores = new Float32Array(rows.vocabSize);
    // In slices, so that the event loop serves requests meanwhile (the whole is ~0.1 s at RN50-x4 size).
    for (let first = 0; first < rows.vocabSize; first += VOCABULARY_CHUNK) {
      if (first > 0) await yieldToLoop();
      scoreRange(rows, u, scores, first, Math.min(rows.vocabSize, first + VOCABULARY_CHUNK));
    }
    for (const id of [startId, endId]) scores[id] = -Infinity;
    return scores;
  }

  private async load(): Promise<VocabularyRows> {
    const file = this.file;
    if (file !== undefined) {
      try {
        const embeddings = await this.read(file);
        if (embeddings) return this.withSquares(embeddings, 'file');
      } catch (error) {
        this.warn(
          `maximal text: the vocabulary's embeddings in ${file} are unreadable (${String(error)}); recomputing`,
        );
      }
    }
    const embeddings = await this.compute();
    if (file !== undefined) {
      try {
        await this.write(file, embeddings);
      } catch (error) {
        this.warn(`maximal text: could not write the vocabulary's embeddings to ${file} (${String(error)})`);
      }
    }
    return this.withSquares(embeddings, 'computed');
  }

  /** The pass: every [start, v, end] row, in chunks of VOCABULARY_CHUNK ids, through the batcher. */
  private async compute(): Promise<Float32Array> {
    const { vocabSize, startId, endId } = this.model.tokenizer;
    const D = this.model.embedDim;
    const embeddings = new Float32Array(vocabSize * D);
    for (let first = 0; first < vocabSize; first += VOCABULARY_CHUNK) {
      const ids: number[] = [];
      for (let id = first; id < Math.min(vocabSize, first + VOCABULARY_CHUNK); id++) {
        if (id !== startId && id !== endId) ids.push(id);
      }
      const rows = await this.model.embedTokenRows(ids.map((id) => [startId, id, endId]));
      ids.forEach((id, i) => {
        if (rows[i].length !== D) throw new Error(`the text encoder gave ${rows[i].length} values, not ${D}`);
        embeddings.set(rows[i], id * D);
      });
    }
    return embeddings;
  }

  private withSquares(embeddings: Float32Array, source: VocabularyRows['source']): VocabularyRows {
    return vocabularyRows(embeddings, this.model.tokenizer.vocabSize, this.model.embedDim, source);
  }

  private expectedHeader(): Omit<FileHeader, 'payloadSha256'> {
    return {
      format: FORMAT,
      version: VERSION,
      model: this.model.sha256,
      provider: this.model.executionProvider,
      vocabSize: this.model.tokenizer.vocabSize,
      embedDim: this.model.embedDim,
    };
  }

  /** The file's rows, or undefined when it is absent or not this model's (never trusted then). */
  private async read(file: string): Promise<Float32Array | undefined> {
    let handle;
    try {
      handle = await open(file, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const { size } = await handle.stat();
      const prefix = Buffer.alloc(4);
      if (size < 4 || (await handle.read(prefix, 0, 4, 0)).bytesRead !== 4)
        return this.stale(file, 'too short');
      const headerLength = prefix.readUInt32LE(0);
      if (headerLength > 4096) return this.stale(file, 'no header');
      const headerBytes = Buffer.alloc(headerLength);
      await handle.read(headerBytes, 0, headerLength, 4);
      const header = JSON.parse(headerBytes.toString('utf8')) as FileHeader;
      const expected = this.expectedHeader();
      for (const [key, value] of Object.entries(expected)) {
        if (header[key as keyof FileHeader] !== value) return this.stale(file, `${key} differs`);
      }
      const dataStart = align4(4 + headerLength);
      const embeddings = new Float32Array(expected.vocabSize * expected.embedDim);
      if (size !== dataStart + embeddings.byteLength) return this.stale(file, 'wrong size');
      const payload = Buffer.from(embeddings.buffer, embeddings.byteOffset, embeddings.byteLength);
      for (let done = 0; done < payload.length;) {
        const { bytesRead } = await handle.read(payload, done, payload.length - done, dataStart + done);
        if (bytesRead === 0) return this.stale(file, 'truncated');
        done += bytesRead;
      }
      if (!littleEndian()) return this.stale(file, 'this machine is big-endian');
      const digest = await sha256(payload);
      if (digest !== header.payloadSha256) return this.stale(file, 'its payload does not match its sha256');
      return embeddings;
    } finally {
      await handle.close();
    }
  }

  private stale(file: string, why: string): undefined {
    this.warn(`maximal text: ${file} is not this model's vocabulary embeddings (${why}); recomputing`);
    return undefined;
  }

  private async write(file: string, embeddings: Float32Array): Promise<void> {
    if (!littleEndian()) return;
    const payload = Buffer.from(embeddings.buffer, embeddings.byteOffset, embeddings.byteLength);
    const header: FileHeader = {
      ...this.expectedHeader(),
      payloadSha256: await sha256(payload),
    };
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const dataStart = align4(4 + json.length);
    const head = Buffer.alloc(dataStart);
    head.writeUInt32LE(json.length, 0);
    json.copy(head, 4);
    await mkdir(path.dirname(file), { recursive: true });
    const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      const handle = await open(temp, 'w');
      try {
        await writeAll(handle, head, 0);
        await writeAll(handle, payload, head.length);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, file);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }
}

async function writeAll(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    done += (await handle.write(bytes, done, bytes.length - done, position + done)).bytesWritten;
  }
}

/** Rows [V, D] with their sums of squares (accumulated in float64 in k order, as objectiveValue). */
export function vocabularyRows(
  embeddings: Float32Array,
  vocabSize: number,
  embedDim: number,
  source: VocabularyRows['source'],
): VocabularyRows {
  if (embeddings.length !== vocabSize * embedDim) throw new RangeError('embeddings are not V × D');
  const squares = new Float64Array(vocabSize);
  for (let id = 0; id < vocabSize; id++) {
    const row = id * embedDim;
    let sum = 0;
    for (let k = 0; k < embedDim; k++) sum += embeddings[row + k] * embeddings[row + k];
    squares[id] = sum;
  }
  return { vocabSize, embedDim, embeddings, squares, source };
}

/**
 * u·t_v/|t_v| of every row as float32, -Infinity for the excluded ids: objectiveValue's arithmetic
 * (float64 sums in k order, then dot / √squares; 0 for a zero row), so the same bits.
 */
export function scoreRows(rows: VocabularyRows, u: Float32Array, excluded: readonly number[]): Float32Array {
  const scores = new Float32Array(rows.vocabSize);
  scoreRange(rows, u, scores, 0, rows.vocabSize);
  for (const id of excluded) scores[id] = -Infinity;
  return scores;
}

function scoreRange(
  rows: VocabularyRows,
  u: Float32Array,
  scores: Float32Array,
  from: number,
  to: number,
): void {
  const { embedDim: D, embeddings, squares } = rows;
  for (let id = from; id < to; id++) {
    const row = id * D;
    let dot = 0;
    for (let k = 0; k < D; k++) dot += u[k] * embeddings[row + k];
    const sum = squares[id];
    scores[id] = sum > 0 ? dot / Math.sqrt(sum) : 0;
  }
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** sha256 (hex) of a large buffer, in 8 MiB slices with the event loop served between them. */
async function sha256(bytes: Buffer): Promise<string> {
  const hash = createHash('sha256');
  const SLICE = 8 << 20;
  for (let at = 0; at < bytes.length; at += SLICE) {
    if (at > 0) await yieldToLoop();
    hash.update(bytes.subarray(at, Math.min(bytes.length, at + SLICE)));
  }
  return hash.digest('hex');
}

const align4 = (n: number) => (n + 3) & ~3;
const littleEndian = () => new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const ofModel = new WeakMap<ClipModel, VocabularyEmbeddings>();

/** The process's one VocabularyEmbeddings for a model (options apply from its next load). */
export function vocabularyOf(model: ClipModel, options: VocabularyOptions = {}): VocabularyEmbeddings {
  let vocabulary = ofModel.get(model);
  if (!vocabulary) ofModel.set(model, (vocabulary = new VocabularyEmbeddings(model, options)));
  else vocabulary.share(options);
  return vocabulary;
}
