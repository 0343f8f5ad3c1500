/**
 * A loaded CLIP model: the tokenizer, the three onnxruntime graphs behind micro-batchers, and W
 * (as an array and as a fourth, in-memory graph, run only chained after the text graph).
 *
 *   text:  token ids [L]            --text.onnx-->          text_embeds  [D]
 *   image: pixel_values [3,S,S]     --visual_trunk.onnx-->  neurons      [C,h,w]
 *          neurons [C,h,w]          --visual_head.onnx-->   image_embeds [D]
 *   W·t:   text_embeds [D]          --bilinear (Gemm)-->    attributions [C]
 *
 * Attribution chains text and W·t: one batch, one trip to the thread, both outputs back.
 *
 * The graphs run on a thread of their own (inference.ts), not on the event loop.
 *
 * Text rows of one batch are padded with zeros only to the longest row of that batch: the graph
 * reads each row's features at its end token (the highest id), and the causal mask keeps the
 * padding after it from changing anything before it.
 */
import type { Config, ExecutionProviderName } from '../config.js';
import { HttpError } from '../errors.js';
import { MicroBatcher } from './batcher.js';
import { BILINEAR_INPUT, BILINEAR_OUTPUT, bilinearGraph } from './bilinear-graph.js';
import { loadModelDirectory, MODEL_FILES, type ModelDirectory } from './model-directory.js';
import { Inference, type GraphInput } from './inference.js';
import type { GraphSignature } from './onnx-session.js';
import { spatialMeans } from './spatial-means.js';
import { ClipTokenizer } from './tokenizer.js';

export interface ImageEncoding {
  /** Neuron activations [C, h, w], row-major. */
  neurons: Float32Array;
  /** Spatial mean of each neuron [C]. */
  neuronMeans: Float32Array;
  /** The image embedding [D] (unnormalised). */
  embedding: Float32Array;
}

/** A prompt's text embedding t [D] and its attribution vector W·t [C] (not normalised). */
export interface TextAttribution {
  embedding: Float32Array;
  product: Float32Array;
}

export type ModelOptions = Pick<
  Config,
  'executionProviders' | 'intraOpThreads' | 'interOpThreads' | 'maxBatch' | 'maxBatchWaitMs'
> &
  Partial<Pick<Config, 'inferenceThread'>> & { warn?: (message: string) => void };

/** Observes every onnxruntime run (graph name, rows, milliseconds), for metrics. */
export type GraphName = 'text' | 'visual_trunk' | 'visual_head' | 'bilinear';
export type RunObserver = (graph: GraphName, rows: number, ms: number) => void;

export class ClipModel {
  readonly neuronCount: number;
  readonly embedDim: number;
  readonly imageSize: number;
  readonly neuronGrid: readonly [number, number];
  readonly pixelsPerImage: number;
  readonly valuesPerNeuronMap: number;
  runObserver: RunObserver | undefined;
  private readonly warn: (message: string) => void;

  private readonly textBatcher: MicroBatcher<readonly number[], Float32Array>;
  private readonly trunkBatcher: MicroBatcher<Float32Array, Float32Array>;
  private readonly headBatcher: MicroBatcher<Float32Array, Float32Array>;
  private readonly attributionBatcher: MicroBatcher<readonly number[], TextAttribution>;

  private constructor(
    readonly directory: ModelDirectory,
    readonly tokenizer: ClipTokenizer,
    readonly executionProvider: ExecutionProviderName,
    /** Holds the sessions of the four graphs, named as in GraphName. */
    private readonly inference: Inference,
    options: ModelOptions,
  ) {
    this.warn = options.warn ?? (() => undefined);
    const { manifest } = directory;
    this.neuronCount = manifest.neuron_count;
    this.embedDim = manifest.embed_dim;
    this.imageSize = manifest.image_size;
    this.neuronGrid = [manifest.neuron_grid[0], manifest.neuron_grid[1]];
    this.pixelsPerImage = 3 * this.imageSize * this.imageSize;
    this.valuesPerNeuronMap = this.neuronCount * this.neuronGrid[0] * this.neuronGrid[1];
    const batching = { maxBatch: options.maxBatch, maxWaitMs: options.maxBatchWaitMs };
    this.textBatcher = new MicroBatcher({ ...batching, run: (rows) => this.runText(rows) });
    this.trunkBatcher = new MicroBatcher({ ...batching, run: (rows) => this.runTrunk(rows) });
    this.headBatcher = new MicroBatcher({ ...batching, run: (rows) => this.runHead(rows) });
    this.attributionBatcher = new MicroBatcher({
      ...batching,
      run: (rows) => this.runTextAttribution(rows),
    });
  }

  static async load(dir: string, options: ModelOptions): Promise<ClipModel> {
    const directory = await loadModelDirectory(dir);
    const { manifest } = directory;
    const tokenizer = await ClipTokenizer.fromMergesFile(directory.path(manifest.tokenizer.merges), {
      vocabSize: manifest.vocab_size,
      contextLength: manifest.context_length,
    });
    const S = manifest.image_size;
    const [h, w] = manifest.neuron_grid;
    const C = manifest.neuron_count;
    const D = manifest.embed_dim;
    const signatures: Record<'text' | 'trunk' | 'head', [string, GraphSignature]> = {
      text: [
        MODEL_FILES.textEncoder,
        {
          input: { name: 'input_ids', type: 'int64', shape: [null, null] },
          output: { name: 'text_embeds', type: 'float32', shape: [null, D] },
        },
      ],
      trunk: [
        MODEL_FILES.visualTrunk,
        {
          input: { name: 'pixel_values', type: 'float32', shape: [null, 3, S, S] },
          output: { name: 'neurons', type: 'float32', shape: [null, C, h, w] },
        },
      ],
      head: [
        MODEL_FILES.visualHead,
        {
          input: { name: 'neurons', type: 'float32', shape: [null, C, h, w] },
          output: { name: 'image_embeds', type: 'float32', shape: [null, D] },
        },
      ],
    };
    const warned = new Set<string>();
    const sessionOptions = {
      providers: options.executionProviders,
      intraOpThreads: options.intraOpThreads,
      interOpThreads: options.interOpThreads,
      warn: (message: string) => {
        if (!warned.has(message)) options.warn?.(message);
        warned.add(message);
      },
    };
    const inference = new Inference({ thread: options.inferenceThread ?? true });
    try {
      const provider = await inference.load(
        'text',
        directory.path(signatures.text[0]),
        signatures.text[1],
        sessionOptions,
      );
      // Once a provider has failed, the other graphs go straight to the one that worked.
      const rest = {
        ...sessionOptions,
        providers: options.executionProviders.slice(options.executionProviders.indexOf(provider)),
      };
      await inference.load('visual_trunk', directory.path(signatures.trunk[0]), signatures.trunk[1], rest);
      await inference.load('visual_head', directory.path(signatures.head[0]), signatures.head[1], rest);
      await inference.load(
        'bilinear',
        `W·t graph of ${directory.path(MODEL_FILES.bilinear)}`,
        {
          input: { name: BILINEAR_INPUT, type: 'float32', shape: [null, D] },
          output: { name: BILINEAR_OUTPUT, type: 'float32', shape: [null, C] },
        },
        // One thread: a micro-batch takes well under a millisecond, less than waking a thread pool
        // that would then spin next to the text encoder's own.
        { ...rest, intraOpThreads: 1 },
        bilinearGraph(directory.bilinear, C, D),
      );
      return new ClipModel(directory, tokenizer, provider, inference, options);
    } catch (error) {
      await inference.release();
      throw error;
    }
  }

  get name(): string {
    return this.directory.manifest.name;
  }

  get sha256(): string {
    return this.directory.sha256;
  }

  /** W, row-major [C, D]. */
  get bilinear(): Float32Array {
    return this.directory.bilinear;
  }

  get logitScale(): number {
    return this.directory.manifest.logit_scale;
  }

  /** Rows waiting in the micro-batchers. */
  get queueDepth(): number {
    return (
      this.textBatcher.depth +
      this.trunkBatcher.depth +
      this.headBatcher.depth +
      this.attributionBatcher.depth
    );
  }

  /** Text embeddings for token id rows (with start and end tokens, as the tokenizer returns them). */
  embedTokenRows(rows: readonly (readonly number[])[]): Promise<Float32Array[]> {
    const stray = this.strayTokenRow(rows);
    return stray ? Promise.reject(stray) : this.textBatcher.submitAll(rows);
  }

  async embedTexts(texts: readonly string[]): Promise<Float32Array[]> {
    return this.embedTokenRows(texts.map((text) => this.tokenizer.encode(text).ids));
  }

  /** Neuron activations [C,h,w] for preprocessed images (pixel_values [3,S,S] each). */
  neuronMaps(pixelRows: readonly Float32Array[]): Promise<Float32Array[]> {
    return this.trunkBatcher.submitAll(pixelRows);
  }

  /** The attention-pool head on (possibly edited) neuron maps. */
  imageEmbeddingsFromNeurons(neuronRows: readonly Float32Array[]): Promise<Float32Array[]> {
    return this.headBatcher.submitAll(neuronRows);
  }

  /** Text embeddings and W·t for token id rows: the text graph and W·t in one run per batch. */
  textAttributions(rows: readonly (readonly number[])[]): Promise<TextAttribution[]> {
    const stray = this.strayTokenRow(rows);
    return stray ? Promise.reject(stray) : this.attributionBatcher.submitAll(rows);
  }

  /**
   * Every row of the text graph begins with the start token, as the tokenizer writes it: the
   * exporter's text graph holds that token's keys and values as constants of the model
   * (tools/export/text_graph.py), so a row with another first id would be read wrongly.
   */
  private strayTokenRow(rows: readonly (readonly number[])[]): Error | undefined {
    const { startId } = this.tokenizer;
    const stray = rows.findIndex((row) => row[0] !== startId);
    return stray < 0
      ? undefined
      : new Error(`token row ${stray} does not begin with the start token (${startId})`);
  }

  async encodeImages(pixelRows: readonly Float32Array[]): Promise<ImageEncoding[]> {
    const maps = await this.neuronMaps(pixelRows);
    const embeddings = await this.imageEmbeddingsFromNeurons(maps);
    return maps.map((neurons, i) => ({
      neurons,
      neuronMeans: spatialMeans(neurons, this.neuronCount),
      embedding: embeddings[i],
    }));
  }

  /** Whether any micro-batcher has rows waiting or a run in flight. */
  get busy(): boolean {
    return [this.textBatcher, this.trunkBatcher, this.headBatcher, this.attributionBatcher].some(
      (batcher) => batcher.busy,
    );
  }

  /**
   * Resolves once no batcher is busy (work of requests whose clients have gone, background fits),
   * or after `limitMs`; true when it drained. Shutdown waits for it before releasing the sessions.
   */
  async drained(limitMs = 5000): Promise<boolean> {
    const deadline = Date.now() + limitMs;
    while (this.busy) {
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return true;
  }

  release(): Promise<void> {
    return this.inference.release();
  }

  private async runText(rows: (readonly number[])[]): Promise<Float32Array[]> {
    const output = await this.run('text', tokenIdsInput(rows), 'text_embeds', rows.length);
    return splitRows(output, rows.length, this.embedDim);
  }

  private async runTextAttribution(rows: (readonly number[])[]): Promise<TextAttribution[]> {
    const chain = { graph: 'bilinear', input: BILINEAR_INPUT, output: BILINEAR_OUTPUT } as const;
    const reply = await this.guarded('text', rows.length, () =>
      this.inference.run('text', tokenIdsInput(rows), 'text_embeds', chain),
    );
    const [textMs, bilinearMs] = reply.ms;
    this.runObserver?.('text', rows.length, textMs);
    this.runObserver?.('bilinear', rows.length, bilinearMs);
    const embeddings = splitRows(reply.data, rows.length, this.embedDim);
    const products = splitRows(reply.chained as Float32Array, rows.length, this.neuronCount);
    return embeddings.map((embedding, i) => ({ embedding, product: products[i] }));
  }

  private async runTrunk(rows: Float32Array[]): Promise<Float32Array[]> {
    const S = this.imageSize;
    const data = concatRows(rows, this.pixelsPerImage);
    const input: GraphInput = { name: 'pixel_values', type: 'float32', data, dims: [rows.length, 3, S, S] };
    const output = await this.run('visual_trunk', input, 'neurons', rows.length);
    return splitRows(output, rows.length, this.valuesPerNeuronMap);
  }

  private async runHead(rows: Float32Array[]): Promise<Float32Array[]> {
    const [h, w] = this.neuronGrid;
    const data = concatRows(rows, this.valuesPerNeuronMap);
    const dims = [rows.length, this.neuronCount, h, w];
    const input: GraphInput = { name: 'neurons', type: 'float32', data, dims };
    const output = await this.run('visual_head', input, 'image_embeds', rows.length);
    return splitRows(output, rows.length, this.embedDim);
  }

  private async run(
    graph: GraphName,
    input: GraphInput,
    outputName: string,
    rows: number,
  ): Promise<Float32Array> {
    const reply = await this.guarded(graph, rows, () => this.inference.run(graph, input, outputName));
    this.runObserver?.(graph, rows, reply.ms[0]);
    return reply.data;
  }

  /** One failed batch fails its own requests with 503; the process and the next batch go on. */
  private async guarded<T>(graph: GraphName, rows: number, run: () => Promise<T>): Promise<T> {
    return run().catch((error: unknown) => {
      // onnxruntime's message (paths, node names) goes to the log, not to the client.
      this.warn(`onnxruntime failed on a ${graph} batch of ${rows} rows: ${String(error)}`);
      throw new HttpError(503, 'the model failed on this batch of requests; retry');
    });
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Token id rows as the text graph's input, padded with zeros to the longest row. */
function tokenIdsInput(rows: readonly (readonly number[])[]): GraphInput {
  const length = Math.max(...rows.map((row) => row.length));
  const ids = new BigInt64Array(rows.length * length);
  if (LITTLE_ENDIAN) {
    // Ids are small non-negative integers: write the low 32 bits of each int64 (the high ones stay
    // zero), far cheaper than a BigInt per id.
    const words = new Int32Array(ids.buffer);
    rows.forEach((row, r) => row.forEach((id, i) => (words[2 * (r * length + i)] = id)));
  } else {
    rows.forEach((row, r) => row.forEach((id, i) => (ids[r * length + i] = BigInt(id))));
  }
  return { name: 'input_ids', type: 'int64', data: ids, dims: [rows.length, length] };
}

function concatRows(rows: readonly Float32Array[], width: number): Float32Array {
  const out = new Float32Array(rows.length * width);
  rows.forEach((row, i) => {
    if (row.length !== width) throw new Error(`row ${i} holds ${row.length} values; expected ${width}`);
    out.set(row, i * width);
  });
  return out;
}

function splitRows(data: Float32Array, rows: number, width: number): Float32Array[] {
  return Array.from({ length: rows }, (_, i) => data.slice(i * width, (i + 1) * width));
}
