/**
 * Attribution on a loaded model: text → neuron vectors (cached per model, normalisation and token
 * ids), an image's per-neuron contributions to a text, and the article's intervention check.
 */
import { cacheKey, type BinaryCache } from '../cache/index.js';
import type { ClipModel } from '../clip/clip-model.js';
import type { Encoders } from '../clip/encoders.js';
import { toPixelValues } from '../clip/image.js';
import { cosine } from '../clip/zero-shot.js';
import { contributions, meanVector, norm, normalized, sum, type Normalize } from './bilinear.js';
import type { NeuronCatalogue } from './neuron-catalogue.js';

export interface ImageAttribution {
  contributions: Float32Array;
  /** Σ x_i·a_i: the bilinear part of the logit before CLIP's normalisation. */
  sum: number;
  /** logit_scale · Σ x_i·a_i / |image embedding|: the bilinear estimate of the logit. */
  bilinearLogit: number;
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

export class AttributionService {
  private blankNeurons: Promise<Float32Array> | undefined;

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

  async imageAttribution(imageBytes: Uint8Array, text: string): Promise<ImageAttribution> {
    const [image, prompt] = await Promise.all([
      this.encoders.imageEncoding(imageBytes),
      this.promptVector(text, 'unit'),
    ]);
    const { vector: a } = prompt;
    const t = await prompt.embedding();
    const perNeuron = contributions(image.neuronMeans, a);
    const total = sum(perNeuron);
    return {
      contributions: perNeuron,
      sum: total,
      bilinearLogit: (this.model.logitScale * total) / (norm(image.embedding) || 1),
      logit: this.model.logitScale * cosine(image.embedding, t),
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
    const cells = blank.length / this.model.neuronCount;
    const edited = neurons.map((neuron) => {
      const map = blank.slice();
      for (let i = neuron * cells; i < (neuron + 1) * cells; i++) map[i] += step;
      return map;
    });
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
    const { ids } = this.model.tokenizer.encode(prompt);
    const key = cacheKey(this.model.sha256, 'attribution', normalize, ids.join(','));
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
