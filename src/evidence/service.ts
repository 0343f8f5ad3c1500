/**
 * The evidence of every neuron on a loaded model: its three sides side by side (seeing: a
 * collection's categories and top images; reading: the word index; speaking for: the text-side
 * index), the multimodality measure (measure.ts) and automatic labels in the manner of CLIP-Dissect
 * (dissect.ts), with their evidence. docs/neuron-evidence.md defines what is returned.
 *
 * Computed once and kept in memory: the text-side index per vocabulary (its rows come from the
 * attribution and text caches, so a second replica rebuilds it from the shared cache), and per
 * collection state (its image count and build) a view: category means, each neuron's top images,
 * the soft-WPMI of every neuron and concept.
 */
import type { NeuronCatalogue, NeuronEntry } from '../attribution/neuron-catalogue.js';
import { CollectionReader } from '../collections/reader.js';
import type { CollectionService, RankedImage } from '../collections/service.js';
import { FILES, NO_CATEGORY, type CollectionManifest } from '../collections/store.js';
import { badRequest, HttpError } from '../errors.js';
import type { WordService } from '../words/service.js';
import { topK, type WordIndex } from '../words/word-index.js';
import {
  ColumnTops,
  logGivenOfTop,
  SOFT_WPMI_DEFAULTS,
  wpmiOfLogGiven,
  type SoftWpmiOptions,
} from './dissect.js';
import {
  binCentres,
  EXPORT_FORMAT,
  EXPORT_LAYER,
  type ExportActivation,
  type NeuronExport,
} from './export.js';
import { multimodality, positionsOf, rankAt, type Multimodality } from './measure.js';
import { SharedTextRows } from './shared-text-rows.js';
import { yieldToEventLoop } from '../threads/event-loop.js';
import {
  buildTextSideIndex,
  conceptTexts,
  SPEAKING_TEMPLATES,
  textSideKey,
  TextSideIndex,
  type TextRank,
} from './text-index.js';

/** The probe collection the embedded model ships (issue 18): the default collection of evidence. */
export const PROBE_COLLECTION = 'probe';
/** Labels given per neuron. */
export const LABELS_PER_NEURON = 3;

export interface EvidenceModel {
  readonly sha256: string;
  readonly neuronCount: number;
  readonly embedDim: number;
  /** The execution provider (part of the shared text rows' identity). */
  readonly executionProvider?: string;
}

export interface EvidenceOptions {
  model: EvidenceModel;
  catalogue: NeuronCatalogue;
  words: WordService;
  collections: CollectionService;
  /** W·t/|t| of a text averaged over templates (app.attribution.textVector). */
  attribution: (text: string, templates: readonly string[]) => Promise<Float32Array>;
  /** Unnormalised text embeddings (app.encoders.textEmbeddings). */
  embeddings: (prompts: readonly string[]) => Promise<Float32Array[]>;
  dissect?: Partial<SoftWpmiOptions>;
  /**
   * DATA_DIR/text-index: the text-side index's word rows shared with the other processes of this
   * DATA_DIR and kept across restarts (shared-text-rows.ts); none: computed in this process.
   */
  sharedTextDir?: string;
  warn?: (message: string) => void;
}

export interface CategoryMean {
  category: string;
  mean: number;
  images: number;
}

export interface LabelEvidence {
  /** How many of the neuron's top images (by mean activation, the soft-WPMI's set) have this category. */
  topImagesInCategory: number | null;
  topImages: number;
  /** The concept's rank among the word index's words for this neuron (null: not a word there). */
  readingRank: number | null;
  /** … among the text-side index's texts. */
  speakingRank: number | null;
  /** True when the concept is a word of the neuron's cached maximal text (null: none cached). */
  inMaxText?: boolean | null;
}

export interface AutoLabel {
  concept: string;
  /** soft-WPMI of the neuron and the concept. */
  score: number;
  /** z-score of the soft-WPMI over the concepts plus z-score of the reading side (0 for non-words). */
  combined: number;
  evidence: LabelEvidence;
}

/** A collection's view: what every neuron query on it needs, computed in one pass over its files. */
export interface CollectionView {
  manifest: CollectionManifest;
  /** Category means [K, C] and image counts [K] (categories with no image are left out). */
  categories: string[];
  categoryCounts: number[];
  categoryMeans: Float64Array;
  /** Each neuron's top images by mean activation (at most m, highest first). */
  top: number[][];
  codes: Uint32Array;
  texts: TextSideIndex;
  /** soft-WPMI [C, T] over the text index's texts. */
  wpmi: Float64Array;
}

export interface NeuronEvidence {
  neuron: number;
  catalogue: NeuronEntry | null;
  lexical: boolean;
  collection: string | null;
  images: number | null;
  seeing: { categories: CategoryMean[]; topImages: RankedImage[] } | null;
  seeingUnavailable?: string;
  reading: { words: { word: string; activation: number; centred: number }[] } | null;
  readingUnavailable?: string;
  speaking: { templates: string[]; vocabulary: number; texts: TextRank[] };
  multimodality: Multimodality | null;
  labels: AutoLabel[];
  /** The neuron's cached maximal text, where a finished search is cached (null: none). */
  maxText?: { text: string; score: number; steps: number } | null;
}

export type NeuronSort = 'id' | 'multimodality' | 'label';

export interface ListQuery {
  collection?: string;
  sort: NeuronSort;
  family?: string;
  lexical?: boolean;
  q?: string;
  offset: number;
  limit: number;
}

/** The served catalogue's labels (catalogue.ts): published > user > automatic. */
export interface ServedLabels {
  refresh(): Promise<void>;
  /** Changes whenever the labels change (for memos). */
  readonly version: number;
  served(neuron: number): { label: string; source: 'published' | 'user' | 'automatic' } | undefined;
}

/** A neuron's cached maximal text (src/search/), if a finished search is cached. */
export type MaxTextLookup = (
  neuron: number,
) => Promise<{ text: string; score: number; steps: number } | null>;

export interface NeuronSummary {
  id: number;
  /** The served label (published > user > automatic). */
  label: string | null;
  labelSource: 'published' | 'user' | 'automatic' | null;
  family: string | null;
  lexical: boolean;
  autoLabel: { concept: string; score: number } | null;
  multimodality: { score: number | null; multimodal: boolean; topCategory: string } | null;
}

export class EvidenceService {
  private readonly textIndexes = new Map<string, Promise<TextSideIndex>>();
  private readonly views = new Map<string, Promise<CollectionView>>();
  private readonly summaryMemo = new WeakMap<
    CollectionView,
    { key: string; value: { all: NeuronSummary[]; multimodalShare: number | null } }
  >();
  private readonly dissect: SoftWpmiOptions;
  private readonly positionMemo = new WeakMap<readonly string[], ReadonlyMap<string, number>>();

  private servedLabels?: ServedLabels;
  private maxTextOf?: MaxTextLookup;

  /** The text-side index's word rows shared through DATA_DIR/text-index, when a directory is given. */
  private readonly sharedTextRows?: SharedTextRows;

  constructor(private readonly options: EvidenceOptions) {
    this.dissect = { ...SOFT_WPMI_DEFAULTS, ...options.dissect };
    const { sharedTextDir, model, warn } = options;
    if (sharedTextDir) {
      this.sharedTextRows = new SharedTextRows({
        dir: sharedTextDir,
        model: model.sha256,
        provider: model.executionProvider ?? 'cpu',
        warn,
      });
    }
  }

  /** Attaches the served catalogue (labels by precedence) and the cached maximal texts (plugins/neuron-labels.ts). */
  attach(parts: { served?: ServedLabels; maxText?: MaxTextLookup }): void {
    if (parts.served) this.servedLabels = parts.served;
    if (parts.maxText) this.maxTextOf = parts.maxText;
  }

  get neuronCount(): number {
    return this.options.model.neuronCount;
  }

  checkNeuron(neuron: number): void {
    const count = this.neuronCount;
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= count)
      throw badRequest(`neuron ${neuron} is out of range (0 to ${count - 1})`);
  }

  /** The text-side index of the word index's vocabulary plus `categories` (built once, kept). */
  textIndex(categories: readonly string[] = []): Promise<TextSideIndex> {
    const texts = conceptTexts(this.options.words.vocabulary.words, categories);
    const key = textSideKey(texts, SPEAKING_TEMPLATES);
    let index = this.textIndexes.get(key);
    if (!index) {
      const { model, attribution, embeddings } = this.options;
      const rows = this.sharedTextRows;
      index = buildTextSideIndex({
        shared: rows && { rows, words: this.options.words.vocabulary.words.length },
        texts,
        templates: SPEAKING_TEMPLATES,
        neuronCount: model.neuronCount,
        embedDim: model.embedDim,
        attribution,
        embeddings,
      });
      index.catch(() => this.textIndexes.delete(key));
      if (this.textIndexes.size >= 8) this.textIndexes.delete(this.textIndexes.keys().next().value as string);
      this.textIndexes.set(key, index);
    }
    return index;
  }

  /** The collection to use: the one asked for (404 when unknown), else the probe collection if any. */
  private async resolveCollection(id: string | undefined): Promise<CollectionManifest | undefined> {
    if (id !== undefined) return this.options.collections.get(id);
    try {
      return await this.options.collections.get(PROBE_COLLECTION);
    } catch (error) {
      if (error instanceof HttpError && error.statusCode === 404) return undefined;
      throw error;
    }
  }

  /** A collection's view (category means, top images, soft-WPMI), computed once per state. */
  async view(manifest: CollectionManifest): Promise<CollectionView> {
    await this.options.collections.requireIndexed(manifest);
    const key = `${manifest.id}|${manifest.images}|${manifest.build.jobId ?? ''}|${manifest.build.finishedAt ?? ''}`;
    let view = this.views.get(key);
    if (!view) {
      view = this.computeView(manifest);
      view.catch(() => this.views.delete(key));
      for (const old of this.views.keys()) if (old.startsWith(`${manifest.id}|`)) this.views.delete(old);
      if (this.views.size >= 8) this.views.delete(this.views.keys().next().value as string);
      this.views.set(key, view);
    }
    return view;
  }

  private async computeView(manifest: CollectionManifest): Promise<CollectionView> {
    const C = this.neuronCount;
    const reader = new CollectionReader(this.options.collections.store, manifest);
    const codes = await reader.categoryCodes();
    const K = manifest.categories.length;
    const sums = new Float64Array(K * C);
    const counts = new Array<number>(K).fill(0);
    const tops = new ColumnTops(C, this.dissect.topK);
    await reader.scan(FILES.means, (rows, start, count) => {
      tops.add(rows, start, count);
      for (let r = 0; r < count; r++) {
        const code = codes[start + r];
        if (code === NO_CATEGORY || code >= K) continue;
        counts[code]++;
        const base = code * C;
        for (let c = 0; c < C; c++) sums[base + c] += rows[r * C + c];
      }
    });
    const kept = counts.flatMap((count, k) => (count > 0 ? [k] : []));
    const categories = kept.map((k) => manifest.categories[k]);
    const categoryMeans = new Float64Array(kept.length * C);
    kept.forEach((k, j) => {
      for (let c = 0; c < C; c++) categoryMeans[j * C + c] = sums[k * C + c] / counts[k];
    });
    const top = Array.from({ length: C }, (_, c) => tops.top(c));
    const texts = await this.textIndex(categories);
    // P[i, ·] = softmax(a · cos(e_i, t_·)) for the images that are some neuron's top image.
    const needed = new Set(top.flat());
    const S = texts.rows;
    const D = texts.embedDim;
    const probabilities = new Map<number, Float64Array>();
    await reader.scan(FILES.embeddings, (rows, start, count) => {
      for (let r = 0; r < count; r++) {
        if (!needed.has(start + r)) continue;
        let norm = 0;
        for (let d = 0; d < D; d++) norm += rows[r * D + d] ** 2;
        norm = Math.sqrt(norm) || 1;
        const logits = new Float64Array(S);
        let max = -Infinity;
        for (let s = 0; s < S; s++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += rows[r * D + d] * texts.embeddings[s * D + d];
          logits[s] = (this.dissect.a * dot) / norm;
          max = Math.max(max, logits[s]);
        }
        let sum = 0;
        for (let s = 0; s < S; s++) sum += logits[s] = Math.exp(logits[s] - max);
        for (let s = 0; s < S; s++) logits[s] /= sum;
        probabilities.set(start + r, logits);
      }
    });
    // In blocks of 64 neurons, handing the event loop back between them (C·m·S logs in all).
    const logGiven = new Float64Array(C * S);
    const probabilityOf = (i: number) => probabilities.get(i) as Float64Array;
    for (let c0 = 0; c0 < C; c0 += 64) {
      logGivenOfTop(top, probabilityOf, S, this.dissect, c0, Math.min(C, c0 + 64), logGiven);
      await yieldToEventLoop();
    }
    const wpmi = wpmiOfLogGiven(logGiven, C, S, this.dissect);
    return {
      manifest,
      categories,
      categoryCounts: kept.map((k) => counts[k]),
      categoryMeans,
      top,
      codes,
      texts,
      wpmi,
    };
  }

  /** The word index, or why there is none (its 409's message). */
  private async wordIndex(): Promise<{ index?: WordIndex; reason?: string }> {
    try {
      return { index: (await this.options.words.require()).index };
    } catch (error) {
      if (error instanceof HttpError && error.statusCode === 409) return { reason: error.message };
      throw error;
    }
  }

  private static readingColumn(index: WordIndex, neuron: number): Float32Array {
    const out = new Float32Array(index.rows);
    for (let i = 0; i < index.rows; i++) out[i] = index.centred[i * index.columns + neuron];
    return out;
  }

  private static seeingColumn(view: CollectionView, neuron: number): Float64Array {
    const C = view.manifest.model.neurons;
    return Float64Array.from(view.categories, (_, k) => view.categoryMeans[k * C + neuron]);
  }

  /** The measure of one neuron on a view (null without categories). */
  measure(view: CollectionView, index: WordIndex | undefined, neuron: number): Multimodality | null {
    if (view.categories.length === 0) return null;
    const seeing = { names: view.categories, scores: EvidenceService.seeingColumn(view, neuron) };
    const reading = index
      ? {
          names: index.words,
          scores: EvidenceService.readingColumn(index, neuron),
          positions: this.positions(index.words),
        }
      : { names: [], scores: [] };
    const speaking = {
      names: view.texts.texts,
      scores: view.texts.column(neuron),
      positions: this.positions(view.texts.texts),
    };
    return multimodality(seeing, reading, speaking);
  }

  /** The neuron's top soft-WPMI concept (the first automatic label), by one pass over its row. */
  private static topConcept(
    view: CollectionView,
    neuron: number,
  ): { concept: string; score: number } | undefined {
    const S = view.texts.rows;
    let best = -1;
    for (let s = 0; s < S; s++) {
      if (best < 0 || view.wpmi[neuron * S + s] > view.wpmi[neuron * S + best]) best = s;
    }
    return best < 0 ? undefined : { concept: view.texts.texts[best], score: view.wpmi[neuron * S + best] };
  }

  /** name → position of a word or text list, kept per list. */
  private positions(names: readonly string[]): ReadonlyMap<string, number> {
    let map = this.positionMemo.get(names);
    if (!map) {
      map = positionsOf(names);
      this.positionMemo.set(names, map);
    }
    return map;
  }

  /** The neuron's automatic labels on a view: the top soft-WPMI concepts, each with its evidence. */
  labels(view: CollectionView, index: WordIndex | undefined, neuron: number, count = LABELS_PER_NEURON) {
    const S = view.texts.rows;
    const scores = view.wpmi.subarray(neuron * S, (neuron + 1) * S);
    const reading = index ? EvidenceService.readingColumn(index, neuron) : undefined;
    const speaking = view.texts.column(neuron);
    const zw = zScores(scores);
    const readingOf = new Float64Array(S);
    const wordRow = view.texts.texts.map((text) => index?.indexOf(text));
    if (reading) {
      const z = zScores(reading);
      wordRow.forEach((row, s) => (readingOf[s] = row === undefined ? 0 : z[row]));
    }
    const combined = Float64Array.from(zw, (value, s) => value + readingOf[s]);
    const top = view.top[neuron];
    const categoryOf = new Map(view.manifest.categories.map((name, code) => [name, code]));
    const label = (s: number): AutoLabel => {
      const concept = view.texts.texts[s];
      const code = categoryOf.get(concept);
      const row = wordRow[s];
      return {
        concept,
        score: scores[s],
        combined: combined[s],
        evidence: {
          topImagesInCategory: code === undefined ? null : top.filter((i) => view.codes[i] === code).length,
          topImages: top.length,
          readingRank: reading && row !== undefined ? rankAt(reading, row) : null,
          speakingRank: rankAt(speaking, s),
        },
      };
    };
    // The best `count` of S concepts (ties: the earlier concept first), one pass each, no sort of all.
    return {
      dissect: topK(scores, count).map(label),
      combined: topK(combined, count).map(label),
    };
  }

  async lexicalNeurons(): Promise<Set<number>> {
    return new Set((await this.options.words.lexicalSet()).neurons);
  }

  /** The three sides of a neuron, the measure and its automatic labels. */
  async evidence(neuron: number, options: { collection?: string; k: number }): Promise<NeuronEvidence> {
    this.checkNeuron(neuron);
    const { k } = options;
    const manifest = await this.resolveCollection(options.collection);
    const { index, reason } = await this.wordIndex();
    const lexical = (await this.lexicalNeurons()).has(neuron);
    const catalogue = this.options.catalogue.get(neuron) ?? null;
    const reading = index ? { words: index.neuronWords(neuron, k).top } : null;
    const base = {
      neuron,
      catalogue,
      lexical,
      reading,
      ...(reason ? { readingUnavailable: reason } : {}),
    };
    if (!manifest) {
      const texts = await this.textIndex();
      return {
        ...base,
        collection: null,
        images: null,
        seeing: null,
        seeingUnavailable: `no collection given and no "${PROBE_COLLECTION}" collection: pass ?collection=<id> (GET /v1/collections lists them)`,
        speaking: { templates: [...texts.templates], vocabulary: texts.rows, texts: texts.top(neuron, k) },
        multimodality: null,
        labels: [],
      };
    }
    const view = await this.view(manifest);
    const C = this.neuronCount;
    const categories = view.categories
      .map((category, j) => ({
        category,
        mean: view.categoryMeans[j * C + neuron],
        images: view.categoryCounts[j],
      }))
      .sort((a, b) => b.mean - a.mean || a.category.localeCompare(b.category))
      .slice(0, k);
    const { top } = await this.options.collections.topImages(neuron, manifest.id, {
      k,
      by: 'mean',
      bins: 0,
      perBin: 1,
    });
    const maxText = (await this.maxTextOf?.(neuron)) ?? null;
    return {
      ...base,
      collection: manifest.id,
      images: manifest.images,
      seeing: { categories, topImages: top },
      speaking: {
        templates: [...view.texts.templates],
        vocabulary: view.texts.rows,
        texts: view.texts.top(neuron, k),
      },
      multimodality: this.measure(view, index, neuron),
      labels: this.labels(view, index, neuron).dissect.map((label) => ({
        ...label,
        evidence: { ...label.evidence, inMaxText: maxText ? namesIn(label.concept, maxText.text) : null },
      })),
      maxText,
    };
  }

  /** The families the catalogue uses, sorted (what `family=` accepts, with "none"). */
  families(): string[] {
    const families = new Set<string>();
    for (const entry of this.options.catalogue.list()) if (entry.family) families.add(entry.family);
    return [...families].sort();
  }

  /** Every neuron's summary (label, family, lexical, automatic label, measure), filtered, sorted and paged. */
  async list(query: ListQuery): Promise<{
    collection: string | null;
    total: number;
    neurons: NeuronSummary[];
    multimodalShare: number | null;
  }> {
    const families = this.families();
    if (query.family !== undefined && query.family !== 'none' && !families.includes(query.family)) {
      const allowed = [...families, 'none'].map((family) => `"${family}"`).join(', ');
      throw badRequest(`family must be one of ${allowed} (the families of this model's catalogue)`);
    }
    const manifest = await this.resolveCollection(query.collection);
    const view = manifest ? await this.view(manifest) : undefined;
    const { index } = await this.wordIndex();
    const lexical = await this.lexicalNeurons();
    const { all, multimodalShare } = await this.summaries(view, index, lexical);
    const q = query.q?.toLowerCase();
    const kept = all.filter(
      (neuron) =>
        (query.family === undefined ||
          (query.family === 'none' ? neuron.family === null : neuron.family === query.family)) &&
        (query.lexical === undefined || neuron.lexical === query.lexical) &&
        (q === undefined ||
          (neuron.label ?? '').toLowerCase().includes(q) ||
          (neuron.autoLabel?.concept ?? '').toLowerCase().includes(q)),
    );
    if (query.sort === 'multimodality') {
      if (!view) {
        throw badRequest(
          `sort=multimodality needs a collection: pass ?collection=<id> (there is no "${PROBE_COLLECTION}" collection)`,
        );
      }
      const key = (n: NeuronSummary) => n.multimodality?.score ?? -Infinity;
      kept.sort((a, b) => key(b) - key(a) || a.id - b.id);
    } else if (query.sort === 'label') {
      kept.sort((a, b) => (a.label ?? '\uffff').localeCompare(b.label ?? '\uffff') || a.id - b.id);
    }
    return {
      collection: manifest?.id ?? null,
      total: kept.length,
      neurons: kept.slice(query.offset, query.offset + query.limit),
      multimodalShare,
    };
  }

  /** Every neuron's summary on a view, computed once per view, word index and lexical set. */
  private async summaries(
    view: CollectionView | undefined,
    index: WordIndex | undefined,
    lexical: Set<number>,
  ): Promise<{ all: NeuronSummary[]; multimodalShare: number | null }> {
    await this.servedLabels?.refresh();
    const key = `${index ? 'words' : 'none'}|${[...lexical].join(',')}|${this.servedLabels?.version ?? 0}`;
    const memo = view ? this.summaryMemo.get(view) : undefined;
    if (memo?.key === key) return memo.value;
    const all: NeuronSummary[] = [];
    let measured = 0;
    let multimodal = 0;
    for (let id = 0; id < this.neuronCount; id++) {
      const entry = this.options.catalogue.get(id);
      const measure = view ? this.measure(view, index, id) : null;
      if (measure) {
        measured++;
        if (measure.multimodal) multimodal++;
      }
      // Hand the event loop back every 32 neurons (a large model has thousands, each O(V + T)).
      if (id % 32 === 31) await yieldToEventLoop();
      const auto = view ? EvidenceService.topConcept(view, id) : undefined;
      const served = this.servedLabels?.served(id);
      all.push({
        id,
        label: served?.label ?? entry?.label ?? null,
        labelSource: served?.source ?? (entry?.label ? 'published' : null),
        family: entry?.family ?? null,
        lexical: lexical.has(id),
        autoLabel: auto ? { concept: auto.concept, score: auto.score } : null,
        multimodality: measure
          ? { score: measure.score, multimodal: measure.multimodal, topCategory: measure.topCategory }
          : null,
      });
    }
    const value = { all, multimodalShare: measured > 0 ? multimodal / measured : null };
    if (view) this.summaryMemo.set(view, { key, value });
    return value;
  }

  /**
   * A neuron in the export shape (export.ts): `examples` top images and `examples` per quantile band
   * (5 bands), a 20-bin histogram, `examples` texts each way, the catalogue's and the automatic labels.
   */
  async exportNeuron(
    neuron: number,
    options: { collection?: string; examples: number },
    shared?: { manifest?: CollectionManifest | null; index?: WordIndex | null; texts?: TextSideIndex },
  ): Promise<NeuronExport> {
    this.checkNeuron(neuron);
    const { examples } = options;
    const manifest =
      shared?.manifest !== undefined
        ? (shared.manifest ?? undefined)
        : await this.resolveCollection(options.collection);
    const index = shared?.index !== undefined ? (shared.index ?? undefined) : (await this.wordIndex()).index;
    const view = manifest ? await this.view(manifest) : undefined;
    const texts = view?.texts ?? shared?.texts ?? (await this.textIndex());
    const entry = this.options.catalogue.get(neuron);
    const explanations: NeuronExport['explanations'] = entry?.label
      ? [
          {
            description: entry.label,
            score: entry.score ?? null,
            typeName: 'catalogue',
            explanationModelName: entry.source ?? 'catalogue',
          },
        ]
      : [];
    const out: NeuronExport = {
      format: EXPORT_FORMAT,
      modelId: this.options.model.sha256.slice(0, 12),
      layer: EXPORT_LAYER,
      index: String(neuron),
      collection: manifest?.id ?? null,
      maxActApprox: null,
      frac_nonzero: null,
      freq_hist_data_bar_heights: [],
      freq_hist_data_bar_values: [],
      activations: [],
      pos_str: [],
      pos_values: [],
      neg_str: [],
      neg_values: [],
      explanations,
      top_words: index
        ? index.neuronWords(neuron, examples).top.map(({ word, activation }) => ({ word, activation }))
        : [],
      multimodality: view ? this.measure(view, index, neuron) : null,
    };
    for (const { text, attribution } of texts.top(neuron, examples)) {
      out.pos_str.push(text);
      out.pos_values.push(attribution);
    }
    for (const { text, attribution } of texts.bottom(neuron, examples)) {
      out.neg_str.push(text);
      out.neg_values.push(attribution);
    }
    if (!manifest || !view) return out;
    const { collections } = this.options;
    const [{ distribution }, ranked] = await Promise.all([
      collections.distribution(neuron, manifest.id, { by: 'mean', bins: 20, buckets: 1, threshold: 0 }),
      collections.topImages(neuron, manifest.id, { k: examples, by: 'mean', bins: 5, perBin: examples }),
    ]);
    out.maxActApprox = distribution.max;
    out.frac_nonzero = distribution.firing;
    out.freq_hist_data_bar_heights = distribution.histogram.counts;
    out.freq_hist_data_bar_values = binCentres(distribution.histogram.edges);
    const example =
      (from: number, to: number) =>
      (image: RankedImage): ExportActivation => ({
        imageId: image.imageId,
        name: image.name,
        category: image.category,
        caption: image.caption,
        thumbnailUrl: `/v1/collections/${manifest.id}/images/${image.imageId}/thumbnail`,
        values: [image.value],
        maxValue: image.value,
        quantile_from: from,
        quantile_to: to,
      });
    out.activations = [
      ...ranked.top.map(example(1 - examples / Math.max(1, distribution.count), 1)),
      ...ranked.quantiles.flatMap((band) => band.images.map(example(band.from, band.to))),
    ];
    for (const label of this.labels(view, index, neuron).dissect) {
      out.explanations.push({
        description: label.concept,
        score: label.score,
        typeName: 'automatic',
        explanationModelName: 'clip-dissect soft-WPMI',
      });
    }
    return out;
  }

  /** Neurons offset … offset + limit − 1 in the export shape, sharing one collection view and index. */
  async exportAll(options: {
    collection?: string;
    examples: number;
    offset: number;
    limit: number;
  }): Promise<{ total: number; neurons: NeuronExport[] }> {
    const manifest = (await this.resolveCollection(options.collection)) ?? null;
    const index = (await this.wordIndex()).index ?? null;
    const texts = manifest ? (await this.view(manifest)).texts : await this.textIndex();
    const neurons: NeuronExport[] = [];
    const end = Math.min(this.neuronCount, options.offset + options.limit);
    for (let neuron = options.offset; neuron < end; neuron++) {
      neurons.push(await this.exportNeuron(neuron, options, { manifest, index, texts }));
    }
    return { total: this.neuronCount, neurons };
  }

  /** Every neuron's automatic labels on a collection (for scoring and export). */
  async allLabels(collection: string): Promise<{ dissect: AutoLabel[]; combined: AutoLabel[] }[]> {
    const manifest = await this.options.collections.get(collection);
    const view = await this.view(manifest);
    const { index } = await this.wordIndex();
    return Array.from({ length: this.neuronCount }, (_, id) => this.labels(view, index, id));
  }
}

/** True when every word of `concept` is a word of `text` (case-insensitive). */
export function namesIn(concept: string, text: string): boolean {
  const words = (value: string) =>
    value
      .toLowerCase()
      .split(/[^\p{L}\p{N}']+/u)
      .filter(Boolean);
  const inText = new Set(words(text));
  const wanted = words(concept);
  return wanted.length > 0 && wanted.every((word) => inText.has(word));
}

function zScores(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  let mean = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(values[i])) continue;
    mean += values[i];
    count++;
  }
  mean /= Math.max(1, count);
  let squares = 0;
  for (let i = 0; i < n; i++) if (!Number.isNaN(values[i])) squares += (values[i] - mean) ** 2;
  const sd = Math.sqrt(squares / Math.max(1, count - 1));
  return Float64Array.from({ length: n }, (_, i) =>
    Number.isNaN(values[i]) || sd === 0 ? 0 : (values[i] - mean) / sd,
  );
}
