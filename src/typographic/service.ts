/**
 * The typographic lab on a loaded model: attacks (a text written on images, classified before and
 * after), their explanation (which neurons carried the change of the winning logit), the defence
 * (a set of neurons zeroed at the neuron layer), Stroop stimuli, and interventions on any image.
 *
 * Zero-shot classification here is the prompt ensemble of tools/toyworld/evaluate.py and CLIP's
 * notebooks: a label's text direction is m = mean over templates of t/|t|, and
 * logit_j = logit_scale · cos(image embedding, m_j), p = softmax(logits).
 *
 * What an attack's success is (per image, with target class T, the class the text writes):
 *   - the image is *eligible* when its clean prediction is not T (and, when its true label is given,
 *     that label is not T either: writing "dog" on a dog is no attack);
 *   - an eligible image is *attacked successfully* when its prediction with the text is T.
 * The success rate is successes / eligible, with a Wilson 95% interval. The defence recomputes
 * eligibility and success with the ablated neurons, on the same pixels.
 */
import sharp from 'sharp';
import type { ClipModel } from '../clip/clip-model.js';
import type { Encoders } from '../clip/encoders.js';
import { centerCrop, resizeShortestSide, toPixelValues, type RgbImage } from '../clip/image.js';
import { rasterizeText } from '../clip/raster.js';
import { spatialMeans } from '../clip/spatial-means.js';
import { cosine, softmax } from '../clip/zero-shot.js';
import type { AttributionService } from '../attribution/service.js';
import { ablation, applyEdits, checkEdits, type NeuronEdit } from '../attribution/edits.js';
import type { LexicalSet, LexicalUse } from '../attribution/lexical-neurons.js';
import { badRequest, conflict, payloadTooLarge } from '../errors.js';
import { norm } from '../attribution/bilinear.js';
import { hexOf, type Rgb } from './colour.js';
import { pasteText, type PasteOptions } from './paste.js';
import { wilson, type Proportion } from './stats.js';

export const TYPOGRAPHIC_LIMITS = {
  /** Images in one attack request; larger runs are refused (413). */
  maxImages: 32,
  maxLabels: 64,
  maxTemplates: 8,
  /** Word × ink pairs of one Stroop request. */
  maxStroopPairs: 64,
  maxEdits: 4096,
  maxExplainNeurons: 64,
} as const;

export const DEFAULT_TEMPLATES = ['a photo of {}'];

export interface Classifier {
  labels: string[];
  templates: string[];
}

export interface AttackRequest extends Classifier {
  images: Uint8Array[];
  /** The true label of each image (among labels), when known; null for an image without one. */
  trueLabels?: (string | null)[];
  paste: PasteOptions;
  /** The class the attack writes (among labels); default: the text, when it is a label. */
  target?: string;
  /** Neurons to zero at the neuron layer for the defence, or the lexical set. */
  ablate?: number[] | 'lexical';
  /**
   * The lexical set, resolved beforehand (a job resolves it when it is submitted, so that any
   * worker measures with the set the service had); else asked for when needed.
   */
  lexical?: LexicalSet;
  /** Neurons per image in the explanation (0: none). */
  explain: number;
  /** Return each attacked crop as a base64 PNG. */
  returnImages: boolean;
}

export interface Prediction {
  probabilities: number[];
  predicted: string;
}

export interface ExplainedNeuron {
  neuron: number;
  /** The catalogue's label, when it has one. */
  label?: string;
  /** x_i·a_i in logit units (logit_scale · x_i·a_i / (|e|·|m|)) on the clean image. */
  before: number;
  /** The same on the attacked image. */
  after: number;
  change: number;
  lexical: boolean;
}

export interface Explanation {
  /** The class whose logit is explained: the attacked image's prediction. */
  label: string;
  logitBefore: number;
  logitAfter: number;
  /** Σ over all neurons of the contributions' change (the bilinear part of the logit's change). */
  bilinearChange: number;
  /** Σ over lexical neurons of the change / Σ over all: the net share they carry (null when 0). */
  lexicalShare: number | null;
  /** Σ over lexical neurons of |change| / Σ over all of |change|. */
  lexicalShareOfAbsolute: number | null;
  neurons: ExplainedNeuron[];
}

export interface AttackedImage {
  /** The image's id and category, when it came from a collection. */
  imageId?: number;
  category?: string | null;
  changedShare: number;
  trueLabel?: string;
  before: Prediction;
  after: Prediction;
  eligible: boolean;
  success: boolean;
  explanation?: Explanation;
  defended?: { before: Prediction; after: Prediction; eligible: boolean; success: boolean };
  attackedPng?: string;
}

export interface Measurement {
  attack: Proportion;
  /** Images whose clean prediction (or true label) already was the target. */
  ineligible: number;
  cleanAccuracy?: Proportion;
  attackedAccuracy?: Proportion;
}

export interface AttackResult {
  text: string;
  target: string;
  labels: string[];
  templates: string[];
  images: AttackedImage[];
  summary: Measurement & { meanChangedShare: number };
  defence?: Measurement & { ablated: number; lexical?: LexicalUse };
  lexical?: LexicalUse;
}

export interface StroopInk {
  label: string;
  colour: Rgb;
}

export interface StroopRequest extends Classifier {
  words: string[];
  inks: StroopInk[];
}

export interface InterventionRequest extends Classifier {
  images: Uint8Array[];
  edits: NeuronEdit[];
}

/** Neuron maps, their spatial means and the head's embeddings for a batch of crops. */
interface Encoded {
  maps: Float32Array[];
  means: Float32Array[];
  embeddings: Float32Array[];
}

export class TypographicService {
  constructor(
    readonly model: ClipModel,
    private readonly encoders: Encoders,
    private readonly attribution: AttributionService,
    private readonly lexicalSet: () => Promise<LexicalSet>,
  ) {}

  /** The service's lexical set (the catalogue's and the word index's detected neurons). */
  lexical(): Promise<LexicalSet> {
    return this.lexicalSet();
  }

  /** The model's S × S input of an image, as RGB bytes: decode, resize the shorter side, centre crop. */
  crop(bytes: Uint8Array): Promise<RgbImage> {
    const S = this.model.imageSize;
    // Under the encoders' one bound on images decoded at once, and their pixel limit.
    return this.encoders.withDecoded(bytes, (image) => centerCrop(resizeShortestSide(image, S), S));
  }

  /** Each label's ensemble direction m (mean of the unit template embeddings). */
  async labelDirections({ labels, templates }: Classifier): Promise<Float32Array[]> {
    checkClassifier({ labels, templates });
    const prompts = labels.flatMap((label) => templates.map((template) => template.replaceAll('{}', label)));
    const embeddings = await this.encoders.textEmbeddings(prompts);
    return labels.map((_, j) => {
      const m = new Float32Array(embeddings[0].length);
      for (let k = 0; k < templates.length; k++) {
        const t = embeddings[j * templates.length + k];
        const scale = 1 / (norm(t) || 1);
        for (let d = 0; d < m.length; d++) m[d] += (t[d] * scale) / templates.length;
      }
      return m;
    });
  }

  logits(embedding: Float32Array, directions: readonly Float32Array[]): number[] {
    return directions.map((m) => this.model.logitScale * cosine(embedding, m));
  }

  predict(
    embedding: Float32Array,
    directions: readonly Float32Array[],
    labels: readonly string[],
  ): Prediction {
    const probabilities = softmax(this.logits(embedding, directions));
    return { probabilities, predicted: labels[argmax(probabilities)] };
  }

  /** Trunk (and head, after the edits) on S × S crops. */
  async encodeCrops(crops: readonly RgbImage[], edits: readonly NeuronEdit[] = []): Promise<Encoded> {
    const { manifest } = this.model.directory;
    const spec = { imageSize: manifest.image_size, mean: manifest.mean, std: manifest.std };
    const maps = await this.model.neuronMaps(crops.map((crop) => toPixelValues(crop, spec)));
    return this.head(maps, edits);
  }

  async head(maps: readonly Float32Array[], edits: readonly NeuronEdit[] = []): Promise<Encoded> {
    const grid = this.model.neuronGrid;
    const edited = edits.length > 0 ? maps.map((map) => applyEdits(map, edits, grid)) : [...maps];
    const embeddings = await this.model.imageEmbeddingsFromNeurons(edited);
    return {
      maps: edited,
      means: edited.map((map) => spatialMeans(map, this.model.neuronCount)),
      embeddings,
    };
  }

  /** The neurons of an `ablate` field: checked ids, or the lexical set (409 when it is empty). */
  async ablatedNeurons(
    ablate: number[] | 'lexical',
    given?: LexicalSet,
  ): Promise<{ neurons: number[]; lexical?: LexicalUse }> {
    if (ablate === 'lexical') {
      const set = given ?? (await this.lexicalSet());
      if (set.neurons.length === 0) {
        throw conflict(
          `the lexical set of this model is empty (${set.use.detectedUnavailable ?? 'no catalogue or detected lexical neurons'}); name neuron ids in ablate instead`,
        );
      }
      return { neurons: set.neurons, lexical: set.use };
    }
    const count = this.model.neuronCount;
    const bad = ablate.find((id) => !Number.isInteger(id) || id < 0 || id >= count);
    if (bad !== undefined) throw badRequest(`ablate neuron ${bad} is out of range (0 to ${count - 1})`);
    return { neurons: [...new Set(ablate)] };
  }

  /**
   * The checks of an attack that need no image (labels, templates, true labels, target, ablation,
   * explanation, the text's font and fit), for `count` images; the target and the ablated neurons.
   */
  async prepareAttack(request: Omit<AttackRequest, 'images'>, count: number) {
    const { labels, trueLabels } = request;
    checkClassifier(request);
    if (trueLabels) {
      if (trueLabels.length !== count) {
        throw badRequest(`trueLabels has ${trueLabels.length} entries for ${count} images`);
      }
      const unknown = trueLabels.find((label) => label !== null && !labels.includes(label));
      if (unknown !== undefined) throw badRequest(`trueLabels: "${unknown}" is not one of the labels`);
    }
    const target = request.target ?? labels.find((label) => sameWord(label, request.paste.text));
    if (target === undefined) {
      throw badRequest(
        `the text "${request.paste.text.slice(0, 40)}" is not one of the labels: name the class it attacks in target`,
      );
    }
    if (!labels.includes(target)) throw badRequest(`target "${target}" is not one of the labels`);
    if (request.explain > TYPOGRAPHIC_LIMITS.maxExplainNeurons) {
      throw badRequest(`explain must be from 0 to ${TYPOGRAPHIC_LIMITS.maxExplainNeurons}`);
    }
    // The layout is checked (fonts, fit) before any image is decoded.
    const S = this.model.imageSize;
    pasteText({ width: S, height: S, data: new Uint8Array(S * S * 3) }, request.paste);
    const ablate = request.ablate ? await this.ablatedNeurons(request.ablate, request.lexical) : undefined;
    return { target, ablate };
  }

  async attack(request: AttackRequest): Promise<AttackResult> {
    const { labels, templates, images, trueLabels } = request;
    checkImageCount(images.length);
    const { target, ablate } = await this.prepareAttack(request, images.length);

    const [directions, crops] = await Promise.all([
      this.labelDirections(request),
      Promise.all(images.map((bytes) => this.crop(bytes))),
    ]);
    const pasted = crops.map((crop) => pasteText(crop, request.paste));
    const both = await this.encodeCrops([...crops, ...pasted.map((p) => p.image)]);
    const n = crops.length;
    const predictions = both.embeddings.map((e) => this.predict(e, directions, labels));
    const clean = predictions.slice(0, n);
    const attacked = predictions.slice(n);

    const lexicalNeeded = request.explain > 0;
    const lexical = lexicalNeeded ? (request.lexical ?? (await this.lexicalSet())) : undefined;
    const lexicalIds = new Set(lexical?.neurons ?? []);

    let defended: Prediction[] | undefined;
    if (ablate) {
      const heads = await this.head(both.maps, ablation(ablate.neurons));
      defended = heads.embeddings.map((e) => this.predict(e, directions, labels));
    }

    const vectors = new Map<string, Float32Array>();
    const vectorOf = async (label: string) => {
      let v = vectors.get(label);
      if (!v) {
        v = await this.attribution.textVector(label, 'unit', templates);
        vectors.set(label, v);
      }
      return v;
    };

    const results: AttackedImage[] = [];
    for (let i = 0; i < n; i++) {
      const trueLabel = trueLabels?.[i] ?? undefined;
      const judge = (before: Prediction, after: Prediction) => {
        const eligible = before.predicted !== target && trueLabel !== target;
        return { eligible, success: eligible && after.predicted === target };
      };
      const row: AttackedImage = {
        changedShare: pasted[i].changedShare,
        ...(trueLabel !== undefined ? { trueLabel } : {}),
        before: clean[i],
        after: attacked[i],
        ...judge(clean[i], attacked[i]),
      };
      if (request.explain > 0) {
        const label = attacked[i].predicted;
        const j = labels.indexOf(label);
        row.explanation = this.explain(
          await vectorOf(label),
          directions[j],
          label,
          [both.means[i], both.means[n + i]],
          [both.embeddings[i], both.embeddings[n + i]],
          lexicalIds,
          request.explain,
        );
      }
      if (defended) {
        const before = defended[i];
        const after = defended[n + i];
        row.defended = { before, after, ...judge(before, after) };
      }
      if (request.returnImages) {
        const { data, width, height } = pasted[i].image;
        const png = await sharp(data, { raw: { width, height, channels: 3 } })
          .png()
          .toBuffer();
        row.attackedPng = png.toString('base64');
      }
      results.push(row);
    }

    return attackSummary(request.paste.text, target, labels, templates, results, trueLabels, {
      ablate: ablate && { count: ablate.neurons.length, lexical: ablate.lexical },
      lexical: lexical?.use,
    });
  }

  /**
   * The change of one class's logit between the clean and the attacked image, neuron by neuron:
   * contribution_i = logit_scale · x_i·a_i / (|e|·|m|) with a = W·m (m the label's ensemble
   * direction, attribution.textVector with the templates), x the spatial means, e the image embedding.
   */
  private explain(
    a: Float32Array,
    m: Float32Array,
    label: string,
    [xBefore, xAfter]: Float32Array[],
    [eBefore, eAfter]: Float32Array[],
    lexical: ReadonlySet<number>,
    k: number,
  ): Explanation {
    const scale = this.model.logitScale / (norm(m) || 1);
    const sb = scale / (norm(eBefore) || 1);
    const sa = scale / (norm(eAfter) || 1);
    const C = a.length;
    const before = new Float64Array(C);
    const after = new Float64Array(C);
    let total = 0;
    let totalAbs = 0;
    let lex = 0;
    let lexAbs = 0;
    for (let i = 0; i < C; i++) {
      before[i] = xBefore[i] * a[i] * sb;
      after[i] = xAfter[i] * a[i] * sa;
      const change = after[i] - before[i];
      total += change;
      totalAbs += Math.abs(change);
      if (lexical.has(i)) {
        lex += change;
        lexAbs += Math.abs(change);
      }
    }
    const order = Array.from({ length: C }, (_, i) => i).sort(
      (p, q) => Math.abs(after[q] - before[q]) - Math.abs(after[p] - before[p]) || p - q,
    );
    return {
      label,
      logitBefore: this.model.logitScale * cosine(eBefore, m),
      logitAfter: this.model.logitScale * cosine(eAfter, m),
      bilinearChange: total,
      lexicalShare: total !== 0 ? lex / total : null,
      lexicalShareOfAbsolute: totalAbs !== 0 ? lexAbs / totalAbs : null,
      neurons: order.slice(0, k).map((neuron) => ({
        neuron,
        label: this.attribution.catalogue.label(neuron),
        before: before[neuron],
        after: after[neuron],
        change: after[neuron] - before[neuron],
        lexical: lexical.has(neuron),
      })),
    };
  }

  /**
   * Each word drawn in each ink (the rasteriser's layout, S × S, white paper), classified among the
   * labels: does the model read the word or see the ink?
   */
  async stroop(request: StroopRequest) {
    checkClassifier(request);
    const { words, inks, labels } = request;
    const pairs = words.flatMap((word) => inks.map((ink) => ({ word, ink })));
    if (pairs.length > TYPOGRAPHIC_LIMITS.maxStroopPairs) {
      throw badRequest(
        `${words.length} words × ${inks.length} inks = ${pairs.length} pairs; the limit is ${TYPOGRAPHIC_LIMITS.maxStroopPairs}`,
      );
    }
    const S = this.model.imageSize;
    const crops = pairs.map(({ word, ink }) => rasterizeText(word, S, ink.colour));
    const [directions, encoded] = await Promise.all([this.labelDirections(request), this.encodeCrops(crops)]);
    const rows = pairs.map(({ word, ink }, i) => {
      const prediction = this.predict(encoded.embeddings[i], directions, labels);
      const congruent = sameWord(word, ink.label);
      const reads: 'word' | 'ink' | 'both' | 'other' = sameWord(prediction.predicted, word)
        ? congruent
          ? 'both'
          : 'word'
        : sameWord(prediction.predicted, ink.label)
          ? 'ink'
          : 'other';
      return { word, ink: ink.label, colour: hexOf(ink.colour), congruent, ...prediction, reads };
    });
    const incongruent = rows.filter((row) => !row.congruent);
    return {
      labels,
      templates: request.templates,
      pairs: rows,
      summary: {
        incongruent: incongruent.length,
        readsWord: wilson(incongruent.filter((row) => row.reads === 'word').length, incongruent.length),
        seesInk: wilson(incongruent.filter((row) => row.reads === 'ink').length, incongruent.length),
        congruentCorrect: wilson(
          rows.filter((row) => row.congruent && row.reads === 'both').length,
          rows.filter((row) => row.congruent).length,
        ),
      },
    };
  }

  /**
   * Edits at the neuron layer of each image (one batch through the trunk and one through the head):
   * the new embedding and each label's change.
   */
  async intervene(request: InterventionRequest) {
    checkClassifier(request);
    checkImageCount(request.images.length, 'an intervention');
    if (request.edits.length > TYPOGRAPHIC_LIMITS.maxEdits) {
      throw badRequest(`at most ${TYPOGRAPHIC_LIMITS.maxEdits} edits`);
    }
    checkEdits(request.edits, this.model.neuronCount, this.model.neuronGrid);
    const [directions, crops] = await Promise.all([
      this.labelDirections(request),
      Promise.all(request.images.map((bytes) => this.crop(bytes))),
    ]);
    const clean = await this.encodeCrops(crops);
    const edited = await this.head(clean.maps, request.edits);
    // Huge values overflow the head's 32-bit floats: an embedding of Infinity or NaN answers nothing.
    const overflow = edited.embeddings.findIndex((embedding) => !embedding.every(Number.isFinite));
    if (overflow >= 0) {
      throw badRequest(
        `the edits overflow the model's 32-bit floats: image ${overflow}'s edited embedding is not finite; use values of smaller magnitude`,
      );
    }
    return clean.embeddings.map((embeddingBefore, i) => {
      const embedding = edited.embeddings[i];
      const before = this.logits(embeddingBefore, directions);
      const after = this.logits(embedding, directions);
      const pBefore = softmax(before);
      const pAfter = softmax(after);
      return {
        embedding,
        embeddingBefore,
        labels: request.labels.map((label, j) => ({
          label,
          before: pBefore[j],
          after: pAfter[j],
          logitBefore: before[j],
          logitAfter: after[j],
          logitChange: after[j] - before[j],
        })),
        predictedBefore: request.labels[argmax(pBefore)],
        predictedAfter: request.labels[argmax(pAfter)],
      };
    });
  }
}

/**
 * The result of an attack from its rows (of one request, or of a job's chunks put together): the
 * success rate among eligible images with its Wilson interval, the accuracies with true labels, and
 * the same for the defence.
 */
export function attackSummary(
  text: string,
  target: string,
  labels: string[],
  templates: string[],
  rows: AttackedImage[],
  trueLabels: readonly (string | null)[] | undefined,
  extra: { ablate?: { count: number; lexical?: LexicalUse }; lexical?: LexicalUse },
): AttackResult {
  const measure = (
    list: { eligible: boolean; success: boolean; before: Prediction; after: Prediction }[],
  ) => {
    const eligible = list.filter((r) => r.eligible);
    const out: Measurement = {
      attack: wilson(eligible.filter((r) => r.success).length, eligible.length),
      ineligible: list.length - eligible.length,
    };
    // Accuracies over the images with a true label (a collection's sample may have some without).
    const labelled = list.filter((_, i) => (trueLabels?.[i] ?? null) !== null);
    if (trueLabels && labelled.length > 0) {
      out.cleanAccuracy = wilson(
        list.filter((r, i) => r.before.predicted === trueLabels[i]).length,
        labelled.length,
      );
      out.attackedAccuracy = wilson(
        list.filter((r, i) => r.after.predicted === trueLabels[i]).length,
        labelled.length,
      );
    }
    return out;
  };
  const meanChangedShare = rows.reduce((sum, r) => sum + r.changedShare, 0) / (rows.length || 1);
  const { ablate, lexical } = extra;
  return {
    text,
    target,
    labels,
    templates,
    images: rows,
    summary: { ...measure(rows), meanChangedShare },
    ...(ablate
      ? {
          defence: {
            ...measure(rows.map((r) => r.defended!)),
            ablated: ablate.count,
            ...(ablate.lexical ? { lexical: ablate.lexical } : {}),
          },
        }
      : {}),
    ...(lexical ? { lexical } : {}),
  };
}

/** 400 for no image, 413 above the images one run takes (larger attacks are jobs, ./job.ts). */
export function checkImageCount(n: number, what = 'an attack'): void {
  if (n === 0) throw badRequest('send at least one image (image, or images)');
  if (n > TYPOGRAPHIC_LIMITS.maxImages) {
    throw payloadTooLarge(
      `${n} images: ${what} takes at most ${TYPOGRAPHIC_LIMITS.maxImages} images per request; split larger runs into several requests`,
    );
  }
}

function checkClassifier({ labels, templates }: Classifier): void {
  if (labels.length === 0) throw badRequest('labels is empty: give at least one label to classify among');
  if (labels.length > TYPOGRAPHIC_LIMITS.maxLabels) {
    throw badRequest(`at most ${TYPOGRAPHIC_LIMITS.maxLabels} labels`);
  }
  if (new Set(labels).size !== labels.length) throw badRequest('labels must be distinct');
  if (templates.length === 0 || templates.length > TYPOGRAPHIC_LIMITS.maxTemplates) {
    throw badRequest(`templates must have 1 to ${TYPOGRAPHIC_LIMITS.maxTemplates} entries`);
  }
  const bad = templates.find((template) => !template.includes('{}'));
  if (bad !== undefined)
    throw badRequest(`template "${bad.slice(0, 40)}" must contain {} where the label goes`);
}

function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function sameWord(a: string, b: string): boolean {
  return a.trim().toLowerCase() === b.trim().toLowerCase();
}
