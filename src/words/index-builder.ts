/**
 * Builds a word index: every vocabulary word is rastered, run through the visual trunk, and
 * reduced to the spatial mean of each neuron map, x_i ∈ R^C; the rows are centred on their mean μ
 * (see word-index.ts) and the neurons are scored for spelling versus meaning (see lexical.ts).
 *
 * Pipeline: batches of `batchSize` words are rastered and normalised on the main thread while
 * onnxruntime runs the previous batch on its own threads; up to `depth` (3) batches are submitted
 * ahead, so the trunk always has the next batch queued, and finished chunks are written behind the
 * pipeline. Rendering yields to the event loop every few words so that a finished run hands over
 * to the queued batch at once; with `renderBatch` (a pool of render threads) whole batches are
 * drawn off the main thread, several at a time.
 *
 * Resumable: results are kept per chunk of `chunkSize` words (batches never straddle chunks); each
 * finished chunk is written to the partial file and synced before its progress is recorded, so an
 * interrupted build (abort signal, crash, kill) continues at the first unrecorded chunk, and the
 * finished index equals that of an uninterrupted build.
 */
import { spatialMeans } from '../clip/spatial-means.js';
import { detectLexicalNeurons, lexicalSample, type LexicalScores } from './lexical.js';
import type { IndexHeader, IndexStore, StoredIndex } from './index-store.js';
import { INDEX_FORMAT } from './index-store.js';
import type { WordRenderer } from './render.js';
import type { Vocabulary } from './vocabulary.js';
import { WordIndex } from './word-index.js';
import { yieldToEventLoop } from '../threads/event-loop.js';

export const DEFAULT_CHUNK_SIZE = 512;
export const DEFAULT_BATCH_SIZE = 32;

/** What the builder needs of a ClipModel. */
export interface IndexModel {
  readonly sha256: string;
  readonly neuronCount: number;
  readonly pixelsPerImage: number;
  neuronMaps(pixelRows: readonly Float32Array[]): Promise<Float32Array[]>;
  embedTexts(texts: readonly string[]): Promise<Float32Array[]>;
}

export type BuildPhase = 'activations' | 'lexical' | 'saving' | 'done';

export interface BuildProgress {
  phase: BuildPhase;
  /** Words whose activations are computed (including those of an earlier, interrupted run). */
  done: number;
  total: number;
  /** Words already on disk when this run started. */
  resumedFrom: number;
  /** Words per second in this run. */
  wordsPerSecond: number;
  /** Seconds left for the activations, at the current rate (null before the first batch). */
  etaSeconds: number | null;
  elapsedSeconds: number;
}

export interface LexicalOptions {
  maxWords?: number;
  buckets?: number;
  folds?: number;
  lambdaScale?: number;
}

export interface BuildOptions {
  model: IndexModel;
  vocabulary: Vocabulary;
  store: IndexStore;
  render: WordRenderer;
  batchSize?: number;
  chunkSize?: number;
  /** Batches submitted ahead of the one being awaited. */
  depth?: number;
  /** Draws whole batches off the main thread (render-pool.ts); `render` is used without it. */
  renderBatch?: (words: readonly string[]) => Promise<{ pixels: Float32Array; failed: number[] }>;
  signal?: AbortSignal;
  onProgress?: (progress: BuildProgress) => void;
  /** false skips lexical detection (the index then has no lexical scores). */
  lexical?: LexicalOptions | false;
}

interface InFlight {
  start: number;
  count: number;
  maps: Promise<Float32Array[]>;
}

function splitPixels(pixels: Float32Array, count: number, size: number): Float32Array[] {
  return Array.from({ length: count }, (_, i) => pixels.subarray(i * size, (i + 1) * size));
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new DOMException('the index build was aborted', 'AbortError');
}

/**
 * Builds the index, or, while another process holds the build lock, waits for that process's
 * index to appear on disk (and takes over if it stops without one).
 */
export async function buildWordIndex(options: BuildOptions): Promise<StoredIndex> {
  const { store, signal } = options;
  while (!(await store.tryLock())) {
    if (signal?.aborted) throw abortError(signal);
    const built = store.exists() ? await store.readFromDisk() : undefined;
    if (built) return built;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  try {
    const built = store.exists() ? await store.readFromDisk() : undefined;
    return built ?? (await buildLocked(options));
  } finally {
    await store.unlock();
  }
}

async function buildLocked(options: BuildOptions): Promise<StoredIndex> {
  const { model, vocabulary, store, render, signal } = options;
  const { words } = vocabulary;
  const V = words.length;
  const C = model.neuronCount;
  const batchSize = Math.max(1, options.batchSize ?? DEFAULT_BATCH_SIZE);
  const chunkSize = Math.max(batchSize, options.chunkSize ?? DEFAULT_CHUNK_SIZE);
  const depth = Math.max(1, options.depth ?? 3);
  const started = performance.now();
  const resumedFrom = await store.readPartial(V, C, chunkSize);
  let processed = resumedFrom;
  let phase: BuildPhase = 'activations';

  const report = () => {
    const elapsedSeconds = (performance.now() - started) / 1000;
    const wordsPerSecond = elapsedSeconds > 0 ? (processed - resumedFrom) / elapsedSeconds : 0;
    const remaining = V - processed;
    const etaSeconds = remaining === 0 ? 0 : wordsPerSecond > 0 ? remaining / wordsPerSecond : null;
    options.onProgress?.({
      phase,
      done: processed,
      total: V,
      resumedFrom,
      wordsPerSecond,
      etaSeconds,
      elapsedSeconds,
    });
  };
  report();

  // A word the rasteriser refuses (too long to draw legibly, nothing visible) gets a row of NaN:
  // it stays in the vocabulary (and its hash) but never appears in a ranking.
  const unrenderable = new Set<number>();
  const renderBatch = async (start: number, count: number): Promise<Float32Array[]> => {
    const size = model.pixelsPerImage;
    const pixels = new Float32Array(count * size);
    for (let i = 0; i < count; i++) {
      try {
        await render(words[start + i], pixels, i * size);
      } catch {
        unrenderable.add(start + i);
      }
      if (i % 4 === 3) await yieldToEventLoop();
    }
    return splitPixels(pixels, count, size);
  };

  let chunkStart = resumedFrom;
  let chunk = new Float32Array(chunkSize * C);
  // Chunk writes run behind the pipeline, one after the other, so the trunk never waits for the disk.
  let writes: Promise<void> = Promise.resolve();
  const inFlight: InFlight[] = [];
  let next = resumedFrom;
  try {
    while (next < V || inFlight.length > 0) {
      while (next < V && inFlight.length < depth) {
        if (signal?.aborted) throw abortError(signal);
        const chunkEnd = Math.min(V, (Math.floor(next / chunkSize) + 1) * chunkSize);
        const count = Math.min(batchSize, chunkEnd - next);
        const start = next;
        const pool = options.renderBatch;
        const maps = pool
          ? pool(words.slice(start, start + count)).then(({ pixels, failed }) => {
              for (const i of failed) unrenderable.add(start + i);
              return model.neuronMaps(splitPixels(pixels, count, model.pixelsPerImage));
            })
          : model.neuronMaps(await renderBatch(start, count));
        maps.catch(() => undefined); // awaited below, unless the build stops first
        inFlight.push({ start: next, count, maps });
        next += count;
      }
      const batch = inFlight.shift() as InFlight;
      const maps = await batch.maps;
      if (signal?.aborted) throw abortError(signal);
      maps.forEach((map, i) => {
        const row = (batch.start - chunkStart + i) * C;
        if (unrenderable.has(batch.start + i)) chunk.fill(NaN, row, row + C);
        else chunk.set(spatialMeans(map, C), row);
      });
      processed = batch.start + batch.count;
      const chunkComplete = processed === V || processed % chunkSize === 0;
      if (chunkComplete) {
        const progress = { rows: V, columns: C, done: processed, chunkSize };
        const rows = chunk.subarray(0, (processed - chunkStart) * C);
        const start = chunkStart;
        writes = writes.then(() => store.appendPartial(rows, start, progress));
        chunk = new Float32Array(chunkSize * C);
        chunkStart = processed;
      }
      report();
    }
  } finally {
    // Let runs already submitted finish before the caller releases the model, and the writes of
    // finished chunks land before anyone resumes from the partial file.
    await Promise.allSettled([...inFlight.map((batch) => batch.maps), writes]);
  }
  await writes;

  const index = WordIndex.fromActivations(words, await store.readPartialRows(V, C), C);
  let lexical: LexicalScores | undefined;
  if (options.lexical !== false) {
    phase = 'lexical';
    report();
    lexical = await scoreLexical(model, index, options.lexical ?? {}, signal);
  }
  phase = 'saving';
  report();
  const header: IndexHeader = {
    format: INDEX_FORMAT,
    modelSha256: model.sha256,
    vocabularySha256: vocabulary.sha256,
    rows: V,
    columns: C,
    words: [...words],
    mean: Array.from(index.mean),
    lexical,
    unrenderable: [...unrenderable].sort((a, b) => a - b).map((row) => words[row]),
    builtAt: new Date().toISOString(),
    buildSeconds: Math.round((performance.now() - started) / 10) / 100,
  };
  await store.writeToDisk(header, index);
  await store.writeToCache(header, index);
  await store.removePartial();
  phase = 'done';
  report();
  return { header, index };
}

/** Text embeddings of a sample of the vocabulary, then the spelling-versus-meaning regressions. */
export async function scoreLexical(
  model: Pick<IndexModel, 'embedTexts'>,
  index: WordIndex,
  options: LexicalOptions,
  signal?: AbortSignal,
): Promise<LexicalScores> {
  const drawn = (row: number) => !Number.isNaN(index.centred[row * index.columns]);
  const sample = lexicalSample(index.rows, options.maxWords).filter(drawn);
  const words = sample.map((i) => index.words[i]);
  const embeddings: Float32Array[] = [];
  for (let start = 0; start < words.length; start += 256) {
    if (signal?.aborted) throw abortError(signal);
    embeddings.push(...(await model.embedTexts(words.slice(start, start + 256))));
  }
  const C = index.columns;
  const responses = new Float32Array(sample.length * C);
  sample.forEach((row, r) => responses.set(index.row(row), r * C));
  return await detectLexicalNeurons({ words, responses, columns: C, embeddings, ...options, signal });
}
