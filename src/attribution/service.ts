/**
 * Attribution on a loaded model: text → neuron vectors (cached per model, normalisation and token
 * ids), an image's per-neuron contributions to a text, and the article's intervention check.
 */
import { cacheKey, type BinaryCache } from '../cache/index.js';
import type { ClipModel } from '../clip/clip-model.js';
import type { Encoders } from '../clip/encoders.js';
import { toPixelValues } from '../clip/image.js';
import { cosine } from '../clip/zero-shot.js';
import {
  contributions,
  meanVector,
  norm,
  normalized,
  sum,
  topAndBottom,
  type Normalize,
  type RankedNeuron,
} from './bilinear.js';
import { applyEdits } from './edits.js';
import type { NeuronCatalogue } from './neuron-catalogue.js';

/**
 * An image's attribution to a text, term by term. With e the image embedding, t̂ = t/|t| and the head
 * written as e = Wᵀx + b(x) (b: the head's biases and positional embedding, as the attention pool
 * weighs them),
 *
 *     logit = logit_scale · e·t̂ / |e|
 *           = logit_scale · Σ x_i·a_i / |e|  +  logit_scale · b(0)·t̂ / |e|  +  residual,
 *
 * where b(0) = head(0), the head's output for all-zero neurons, and the residual is
 * logit_scale · (b(x) − b(0))·t̂ / |e|: zero (to rounding) when the attention pool's attention is
 * uniform (the embedded model), the attention's dependence on the image otherwise (RN50-x4).
 */
export interface ImageAttribution {
  /** x_i·a_i per neuron, before normalisation (a = W·t/|t|). */
  contributions: Float32Array;
  /** Σ x_i·a_i: the bilinear part of the logit before CLIP's normalisation. */
  sum: number;
  /** |e|, the image embedding's length: the normalisation the logit divides by. */
  imageNorm: number;
  /** The model's logit scale: logit = logit_scale · cosine. */
  logitScale: number;
  /** logit_scale · Σ x_i·a_i / |e|: the bilinear part after normalisation, in logit units. */
  bilinearLogit: number;
  /** logit_scale · head(0)·t̂ / |e|: the head's bias and positional terms, in logit units. */
  biasLogit: number;
  /** logit − bilinearLogit − biasLogit: what depends on the image beyond Wᵀx (the attention's weights). */
  residual: number;
  /** logit_scale · cos(image embedding, text embedding): what the model actually says. */
  logit: number;
}

export interface InterventionResult {
  delta: number;
  before: number;
  neurons: { neuron: number; attribution: number; after: number; rose: boolean }[];
}

/** A prompt's attribution vector and its text embedding t (see promptVector). */
interface PromptVector {
  vector: Float32Array;
  embedding(): Promise<Float32Array>;
}

/** Prompts whose token ids and cache key are remembered (the oldest forgotten first), up to this length. */
const PROMPT_MEMO = 4096;
const PROMPT_MEMO_CHARS = 256;
/** How many texts' top and bottom neurons are remembered (each with a copy of its vector's bytes). */
const RANKS_MEMO = 256;

/** A text's attribution vector with its top and bottom neurons. */
export interface TextRanks {
  vector: Float32Array;
  top: RankedNeuron[];
  bottom: RankedNeuron[];
}

export class AttributionService {
  private readonly promptKeys = new Map<string, { ids: number[]; key: string }>();
  private readonly ranks = new Map<string, { bytes: Buffer; top: RankedNeuron[]; bottom: RankedNeuron[] }>();
  private blankNeurons: Promise<Float32Array> | undefined;
  private zeroEmbedding: Promise<Float32Array> | undefined;

  constructor(
    readonly model: ClipModel,
    readonly catalogue: NeuronCatalogue,
    private readonly encoders: Encoders,
    private readonly cache: BinaryCache,
  ) {}

  /** The attribution vector of one prompt, or the mean over templates ("{}" stands for the text). */
  async textVector(text: string, normalize: Normalize, templates?: readonly string[]): Promise<Float32Array> {
    const prompts = templates?.length ? templates.map((template) => template.replaceAll('{}', text)) : [text];
    const vectors = await Promise.all(
      prompts.map(async (prompt) => (await this.promptVector(prompt, normalize)).vector),
    );
    return vectors.length === 1 ? vectors[0] : meanVector(vectors);
  }

  /**
   * A text's attribution vector and its top and bottom `topK` neurons (topAndBottom). For the last
   * RANKS_MEMO short texts without templates the ranks are remembered with the vector's bytes, and
   * given again when the vector read now has the same bytes: on a cached request the loop over C
   * was the route's own largest cost. The same bytes give the same ranks, so the answer is the same.
   */
  async textRanks(
    text: string,
    normalize: Normalize,
    topK: number,
    templates?: readonly string[],
  ): Promise<TextRanks> {
    const vector = await this.textVector(text, normalize, templates);
    if (templates?.length || text.length > PROMPT_MEMO_CHARS)
      return { vector, ...topAndBottom(vector, topK) };
    const memoKey = `${topK}:${normalize}:${text}`;
    const bytes = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength);
    const known = this.ranks.get(memoKey);
    if (known?.bytes.equals(bytes)) return { vector, top: known.top, bottom: known.bottom };
    const { top, bottom } = topAndBottom(vector, topK);
    if (!known && this.ranks.size >= RANKS_MEMO) this.ranks.delete(this.ranks.keys().next().value!);
    this.ranks.set(memoKey, { bytes: Buffer.from(bytes), top, bottom });
    return { vector, top, bottom };
  }

  async imageAttribution(imageBytes: Uint8Array, text: string): Promise<ImageAttribution> {
    const [image, prompt, bias] = await Promise.all([
      this.encoders.imageEncoding(imageBytes),
      this.promptVector(text, 'unit'),
      this.headOfZero(),
    ]);
    const { vector: a } = prompt;
    const t = await prompt.embedding();
    const perNeuron = contributions(image.neuronMeans, a);
    const total = sum(perNeuron);
    const logitScale = this.model.logitScale;
    const imageNorm = norm(image.embedding) || 1;
    const bilinearLogit = (logitScale * total) / imageNorm;
    const biasLogit = (logitScale * dotUnit(bias, t)) / imageNorm;
    const logit = logitScale * cosine(image.embedding, t);
    return {
      contributions: perNeuron,
      sum: total,
      imageNorm,
      logitScale,
      bilinearLogit,
      biasLogit,
      residual: logit - bilinearLogit - biasLogit,
      logit,
    };
  }

  /**
   * The article's check that a neuron speaks for a text: on a blank (white) image, add `delta` to
   * the neuron's activation at every grid position, run the attention-pool head, and compare the
   * text's logit before and after. `delta` defaults to the largest activation of the blank image.
   */
  async intervention(text: string, neurons: readonly number[], delta?: number): Promise<InterventionResult> {
    const [blank, prompt] = await Promise.all([this.blankImageNeurons(), this.promptVector(text, 'unit')]);
    const { vector: a } = prompt;
    const t = await prompt.embedding();
    const step = delta ?? (Math.max(...blank) || 1);
    // One case of the general intervention (src/attribution/edits.ts): add `step` at every position.
    const edited = neurons.map((neuron) =>
      applyEdits(blank, [{ neuron, op: 'add', value: step }], this.model.neuronGrid),
    );
    const embeddings = await this.model.imageEmbeddingsFromNeurons([blank, ...edited]);
    const logit = (embedding: Float32Array) => this.model.logitScale * cosine(embedding, t);
    const before = logit(embeddings[0]);
    return {
      delta: step,
      before,
      neurons: neurons.map((neuron, i) => {
        const after = logit(embeddings[i + 1]);
        return { neuron, attribution: a[neuron], after, rose: after > before };
      }),
    };
  }

  /**
   * One prompt, tokenized once: its attribution vector, and its text embedding t. When the vector is
   * computed here, t is the one the same chained run gave; when the vector was cached, t is asked for
   * by the prompt's token ids (the text-embedding cache, else the text graph), and only if wanted.
   */
  private async promptVector(prompt: string, normalize: Normalize): Promise<PromptVector> {
    const { ids, key } = this.promptKey(prompt, normalize);
    const cached = await this.cache.getVector(key);
    if (cached) {
      return { vector: cached, embedding: async () => (await this.encoders.tokenEmbeddings([ids]))[0] };
    }
    const { embedding, product } = await this.encoders.tokenAttribution(ids);
    const vector = normalized(product, embedding, normalize);
    // Fire-and-forget: the answer does not wait for the cache write, which never rejects (a cache
    // that fails is bypassed, src/cache/).
    void this.cache.setVector(key, vector);
    return { vector, embedding: () => Promise.resolve(embedding) };
  }

  /**
   * A prompt's token ids and cache key, remembered for the last PROMPT_MEMO short prompts: on a
   * cached request, tokenising the prompt and hashing its key were a few percent of the server's
   * own work (profiled at concurrency 32 on RN50-x4), for an answer that is the same every time.
   */
  private promptKey(prompt: string, normalize: Normalize): { ids: number[]; key: string } {
    const memoKey = `${normalize}:${prompt}`;
    const known = this.promptKeys.get(memoKey);
    if (known) return known;
    const { ids } = this.model.tokenizer.encode(prompt);
    const entry = { ids, key: cacheKey(this.model.sha256, 'attribution', normalize, ids.join(',')) };
    if (prompt.length <= PROMPT_MEMO_CHARS) {
      if (this.promptKeys.size >= PROMPT_MEMO) this.promptKeys.delete(this.promptKeys.keys().next().value!);
      this.promptKeys.set(memoKey, entry);
    }
    return entry;
  }

  /** head(0): the image embedding of all-zero neurons, the head's bias and positional terms. */
  private headOfZero(): Promise<Float32Array> {
    this.zeroEmbedding ??= (async () => {
      const [gh, gw] = this.model.neuronGrid;
      const zeros = new Float32Array(this.model.neuronCount * gh * gw);
      const [embedding] = await this.model.imageEmbeddingsFromNeurons([zeros]);
      return embedding;
    })().catch((error: unknown) => {
      this.zeroEmbedding = undefined; // a failed run is retried by the next request
      throw error;
    });
    return this.zeroEmbedding;
  }

  private blankImageNeurons(): Promise<Float32Array> {
    this.blankNeurons ??= (async () => {
      const { manifest } = this.model.directory;
      const S = manifest.image_size;
      const white = { width: S, height: S, data: new Uint8Array(S * S * 3).fill(255) };
      const pixels = toPixelValues(white, { imageSize: S, mean: manifest.mean, std: manifest.std });
      const [neurons] = await this.model.neuronMaps([pixels]);
      return neurons;
    })().catch((error: unknown) => {
      this.blankNeurons = undefined; // a failed run is retried by the next request
      throw error;
    });
    return this.blankNeurons;
  }
}

/** b·t/|t|. */
function dotUnit(b: Float32Array, t: Float32Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i++) s += b[i] * t[i];
  return s / (norm(t) || 1);
}
