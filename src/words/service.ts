/**
 * The word index of one model as a service: where it comes from (disk, then the shared cache,
 * else a build), the background build job and its progress, and the queries the routes answer.
 * A query that needs a missing index fails with 409 and says how to build it.
 */
import type { BinaryCache, CacheLogger } from '../cache/index.js';
import { cacheKey } from '../cache/index.js';
import { spatialMeans } from '../clip/spatial-means.js';
import { badRequest, conflict } from '../errors.js';
import { combineCosines, parseExpression, type ArithmeticMethod } from './arithmetic.js';
import {
  buildWordIndex,
  type BuildOptions,
  type BuildProgress,
  type IndexModel,
  type LexicalOptions,
} from './index-builder.js';
import { IndexStore, type StoredIndex } from './index-store.js';
import { lexicalNeurons, lexicalScore } from './lexical.js';
import {
  combineLexical,
  type DetectedLexical,
  type LexicalSet,
  type LexicalUse,
} from '../attribution/lexical-neurons.js';
import type { NeuronEntry } from '../attribution/neuron-catalogue.js';
import { OrtProduct } from './matrix-product.js';
import type { WordRenderer } from './render.js';
import type { WordSettings } from './settings.js';
import type { Vocabulary } from './vocabulary.js';
import { SMALL_VOCABULARY } from './vocabulary.js';
import type { Hit } from './word-index.js';

export type IndexState = 'missing' | 'building' | 'ready' | 'failed';
export type Mask = 'lexical' | 'none' | readonly number[];

export interface IndexStatus {
  state: IndexState;
  vocabulary: { size: number; source: string; sha256: string };
  progress?: BuildProgress;
  error?: string;
  builtAt?: string;
  lexical: boolean;
}

export interface WordServiceOptions {
  model: IndexModel;
  vocabulary: Vocabulary;
  render: WordRenderer;
  dataDir: string;
  settings: WordSettings;
  cache?: BinaryCache;
  log?: CacheLogger;
  /**
   * The catalogue's lexical entries (src/attribution/lexical-neurons.ts): `mask=lexical` and
   * lexicalSet() take them together with the neurons the index's detector flags.
   */
  catalogueLexical?: readonly NeuronEntry[];
  /** Starts render threads for a build (closed when it ends); without it words are drawn inline. */
  renderPool?: () => { render: BuildOptions['renderBatch']; close(): Promise<void> };
}

const HOW_TO_BUILD = 'build it with `npm run index-words` or `POST /v1/admin/index` (admin key)';
/** How often a route asking for a missing index looks in the shared cache again. */
const CACHE_RECHECK_MS = 10_000;

export class WordService {
  readonly store: IndexStore;
  private stored: StoredIndex | undefined;
  private product: OrtProduct | undefined;
  private loading: Promise<boolean> | undefined;
  private job: { promise: Promise<void>; abort: AbortController } | undefined;
  private progress: BuildProgress | undefined;
  private error: string | undefined;
  private lastCacheCheck = 0;
  private regionCache: RegionStats | undefined;

  constructor(private readonly options: WordServiceOptions) {
    const { model, vocabulary, dataDir, cache } = options;
    this.store = new IndexStore(dataDir, model.sha256, vocabulary.sha256, cache);
  }

  get vocabulary(): Vocabulary {
    return this.options.vocabulary;
  }

  /** Whether the settings ask for a build at start when no index is found. */
  get autoBuild(): boolean {
    const { autoBuild } = this.options.settings;
    const small = this.vocabulary.source === 'words.txt' || this.vocabulary.words.length < SMALL_VOCABULARY;
    return autoBuild === 'true' || (autoBuild === 'auto' && small);
  }

  /** Loads the index from disk or, failing that, from the shared cache (then keeps a copy on disk). */
  load(): Promise<boolean> {
    if (this.stored) return Promise.resolve(true);
    this.loading ??= this.loadOnce().finally(() => (this.loading = undefined));
    return this.loading;
  }

  private async loadOnce(): Promise<boolean> {
    const fromDisk = await this.store.readFromDisk().catch((error: Error) => {
      this.options.log?.warn({ err: error.message }, 'word index on disk is unreadable; ignored');
      return undefined;
    });
    if (fromDisk) {
      await this.attach(fromDisk);
      return true;
    }
    this.lastCacheCheck = Date.now();
    const fromCache = await this.store.readFromCache();
    if (!fromCache) return false;
    await this.attach(fromCache);
    await this.store.writeToDisk(fromCache.header, fromCache.index).catch(() => undefined);
    this.options.log?.info({ rows: fromCache.header.rows }, 'word index loaded from the shared cache');
    return true;
  }

  status(): IndexStatus {
    const state: IndexState = this.stored
      ? 'ready'
      : this.job
        ? 'building'
        : this.error
          ? 'failed'
          : 'missing';
    return {
      state,
      vocabulary: {
        size: this.vocabulary.words.length,
        source: this.vocabulary.source,
        sha256: this.vocabulary.sha256,
      },
      ...(this.progress ? { progress: this.progress } : {}),
      ...(this.error && !this.stored ? { error: this.error } : {}),
      ...(this.stored ? { builtAt: this.stored.header.builtAt } : {}),
      lexical: this.stored?.header.lexical !== undefined,
    };
  }

  /** Starts a background build unless the index is ready or being built; returns the status. */
  startBuild(
    options: { lexical?: LexicalOptions | false; onProgress?: (progress: BuildProgress) => void } = {},
  ): IndexStatus {
    if (this.stored || this.job) return this.status();
    const abort = new AbortController();
    this.error = undefined;
    const { model, vocabulary, render, settings } = this.options;
    const total = vocabulary.words.length;
    // Until the builder reports (after it has read any earlier partial build): nothing done yet.
    this.progress = {
      phase: 'activations',
      done: 0,
      total,
      resumedFrom: 0,
      wordsPerSecond: 0,
      etaSeconds: null,
      elapsedSeconds: 0,
    };
    const pool = this.options.renderPool?.();
    const promise = buildWordIndex({
      model,
      vocabulary,
      store: this.store,
      render,
      renderBatch: pool?.render,
      depth: pool ? settings.renderThreads + 2 : undefined,
      batchSize: settings.batchSize,
      signal: abort.signal,
      lexical: options.lexical ?? { maxWords: settings.lexicalMaxWords },
      onProgress: (progress) => {
        this.progress = progress;
        options.onProgress?.(progress);
      },
    }).then(
      async (stored) => {
        await this.attach(stored);
        this.options.log?.info({ seconds: stored.header.buildSeconds }, 'word index built');
      },
      (error: Error) => {
        this.error = error.message;
        if (!abort.signal.aborted) this.options.log?.error({ err: error }, 'word index build failed');
      },
    );
    const ended = promise.finally(async () => {
      await pool?.close();
      this.job = undefined;
    });
    this.job = { promise: ended, abort };
    return this.status();
  }

  /** Makes the index ready, with onnxruntime's MatMul for its products when it can be had. */
  private async attach(stored: StoredIndex): Promise<void> {
    const { index } = stored;
    const previous = this.product;
    try {
      this.product = await OrtProduct.create(
        index.centred,
        index.rows,
        index.columns,
        this.options.settings.queryThreads,
      );
      index.useProduct(this.product);
    } catch (error) {
      this.options.log?.warn({ err: (error as Error).message }, 'word index queries fall back to JavaScript');
    }
    this.stored = stored;
    if (previous && previous !== this.product) await previous.release();
  }

  /** Stops a running build and releases the query session. */
  async close(): Promise<void> {
    await this.stop();
    await this.product?.release();
    this.product = undefined;
  }

  /** Resolves when the running build (if any) has ended. */
  async settled(): Promise<void> {
    await this.job?.promise;
  }

  /** Stops a running build (its finished chunks stay on disk for the next one). */
  async stop(): Promise<void> {
    this.job?.abort.abort();
    await this.settled();
  }

  /** The index, or a 409 saying how to build it and how far a running build has got. */
  async require(): Promise<StoredIndex> {
    if (this.stored) return this.stored;
    if (!this.job && Date.now() - this.lastCacheCheck > CACHE_RECHECK_MS) await this.load();
    if (this.stored) return this.stored;
    const words = this.vocabulary.words.length;
    if (this.job) {
      const progress = this.progress;
      if (!progress || progress.elapsedSeconds === 0) {
        throw conflict(
          'the word index build is starting (or waiting for another process building it); retry later',
        );
      }
      const { done, total, etaSeconds, phase } = progress;
      const eta = etaSeconds === null ? '' : `, about ${Math.ceil(etaSeconds)} s left`;
      throw conflict(`the word index is being built (${phase}: ${done}/${total} words${eta}); retry later`);
    }
    const failed = this.error ? ` (the last build failed: ${this.error})` : '';
    throw conflict(`no word index for this model and its ${words}-word vocabulary${failed}: ${HOW_TO_BUILD}`);
  }

  /** The centred embedding of any word: its row when indexed, else rastered and run now (cached). */
  async wordVector(word: string): Promise<{ vector: Float32Array; row?: number }> {
    const { index } = await this.require();
    const row = index.indexOf(word);
    if (row !== undefined && Number.isNaN(index.centred[row * index.columns])) {
      throw badRequest(`"${word}" could not be rastered at this model's input size`);
    }
    if (row !== undefined) return { vector: index.row(row), row };
    const { model, cache, render } = this.options;
    const key = cacheKey(model.sha256, 'word_neurons', word);
    let means = await cache?.getVector(key);
    if (means === undefined || means.length !== index.columns) {
      const pixels = new Float32Array(model.pixelsPerImage);
      await render(word, pixels, 0);
      const [maps] = await model.neuronMaps([pixels]);
      means = spatialMeans(maps, model.neuronCount);
      // Fire-and-forget: the answer does not wait for the cache write, which never rejects.
      void cache?.setVector(key, means);
    }
    return { vector: index.centre(means) };
  }

  /**
   * The detector's part of the lexical set: the neurons the index flags at `threshold`, or why
   * there are none. With `waitForBuild`, when the vocabulary is one built at start (small: seconds),
   * its build is awaited (started if it has not been yet), so the answer does not depend on how far
   * that build has got when it is asked.
   */
  async detectedLexical(
    threshold = this.options.settings.lexicalThreshold,
    { waitForBuild = false } = {},
  ): Promise<DetectedLexical> {
    // Like require(): a missing index is looked for on disk and in the shared cache at most every
    // CACHE_RECHECK_MS, not on every request that asks for the lexical set.
    if (!this.stored && !this.job && Date.now() - this.lastCacheCheck > CACHE_RECHECK_MS)
      await this.load().catch(() => false);
    if (waitForBuild && !this.stored && this.autoBuild && !this.error) {
      this.startBuild(); // idempotent: joins the build started at start, or starts it
      await this.settled();
    }
    const header = this.stored?.header;
    if (!header) {
      const state = this.job ? 'being built' : 'missing';
      return { available: false, reason: `the word index is ${state} (${HOW_TO_BUILD})` };
    }
    if (!header.lexical) return { available: false, reason: 'the word index has no lexical scores' };
    return {
      available: true,
      threshold,
      flagged: lexicalNeurons(header.lexical, threshold),
      scores: lexicalScore(header.lexical),
    };
  }

  /**
   * What the lexical set depends on besides the model: the vocabulary (its hash), the detector's
   * threshold, and whether the index is built at start. Two services with the same model and basis
   * detect the same set once their indexes are built (the build and the detector are deterministic).
   */
  lexicalBasis(threshold = this.options.settings.lexicalThreshold): string {
    return `vocabulary ${this.store.vocabularySha256}, threshold ${threshold}, built at start ${this.autoBuild}`;
  }

  /** The service's lexical set: the catalogue's lexical family and the detector's flags. */
  async lexicalSet(
    threshold = this.options.settings.lexicalThreshold,
    options: { waitForBuild?: boolean } = {},
  ): Promise<LexicalSet> {
    return combineLexical(
      this.options.catalogueLexical ?? [],
      await this.detectedLexical(threshold, options),
    );
  }

  /**
   * Neuron ids a mask zeroes, and for `lexical` the sources of the set; unknown ids are a 400, a
   * lexical mask on an index without scores a 409.
   */
  async maskIds(
    mask: Mask,
    threshold = this.options.settings.lexicalThreshold,
  ): Promise<{ ids: number[] | undefined; lexical?: LexicalUse }> {
    const { index, header } = await this.require();
    if (mask === 'none') return { ids: undefined };
    if (mask === 'lexical') {
      if (!header.lexical)
        throw conflict(`this word index has no lexical scores: rebuild it (${HOW_TO_BUILD})`);
      const set = await this.lexicalSet(threshold);
      return { ids: set.neurons, lexical: set.use };
    }
    const bad = mask.find((id) => !Number.isInteger(id) || id < 0 || id >= index.columns);
    if (bad !== undefined) throw badRequest(`mask neuron ${bad} is out of range (0 to ${index.columns - 1})`);
    return { ids: [...mask] };
  }

  async neighbors(
    word: string,
    k: number,
    mask: Mask,
  ): Promise<{ inVocabulary: boolean; neighbors: Hit[]; lexical?: LexicalUse }> {
    const { index } = await this.require();
    const { ids, lexical } = await this.maskIds(mask);
    const { vector, row } = await this.wordVector(word);
    const neighbors = await index.nearest(vector, k, { mask: ids, exclude: row === undefined ? [] : [row] });
    return { inVocabulary: row !== undefined, neighbors, ...(lexical ? { lexical } : {}) };
  }

  async arithmetic(expression: string, k: number, mask: Mask, method: ArithmeticMethod) {
    const terms = parseExpression(expression);
    const { index } = await this.require();
    const { ids, lexical } = await this.maskIds(mask);
    const vectors = await Promise.all(terms.map((term) => this.wordVector(term.text)));
    const cosines = await index.cosines(
      vectors.map(({ vector }) => vector),
      ids,
    );
    const scores = combineCosines(
      cosines,
      terms.map((term) => term.sign),
      method,
    );
    const exclude = vectors.flatMap(({ row }) => (row === undefined ? [] : [row]));
    return { terms, results: index.ranked(scores, k, exclude), ...(lexical ? { lexical } : {}) };
  }

  async neuronWords(neuron: number, k: number) {
    const { index } = await this.require();
    if (neuron >= index.columns)
      throw badRequest(`neuron ${neuron} is out of range (0 to ${index.columns - 1})`);
    return index.neuronWords(neuron, k);
  }

  async lexical(threshold = this.options.settings.lexicalThreshold) {
    const { header } = await this.require();
    if (!header.lexical)
      throw conflict(`this word index has no lexical scores: rebuild it (${HOW_TO_BUILD})`);
    return {
      threshold,
      scores: header.lexical,
      flagged: lexicalNeurons(header.lexical, threshold),
      set: await this.lexicalSet(threshold),
    };
  }

  /** The article's region-neuron heuristic over the top-5 words of every neuron. */
  async regionStats(): Promise<RegionStats> {
    const { index } = await this.require();
    if (this.regionCache) return this.regionCache;
    const geographic = this.vocabulary.geographic;
    const buckets = [0, 0, 0, 0, 0, 0];
    const allGeographic: number[] = [];
    for (let c = 0; c < index.columns; c++) {
      const top = index.neuronWords(c, 5).top;
      const count = top.filter((entry) => geographic[index.indexOf(entry.word) as number] === 1).length;
      buckets[count]++;
      if (count === 5) allGeographic.push(c);
    }
    const geographicWords = geographic.reduce((sum, flag) => sum + flag, 0);
    this.regionCache = {
      neurons: index.columns,
      geographicWords,
      vocabularySize: index.rows,
      buckets: buckets.map((neurons, geographicInTop5) => ({ geographicInTop5, neurons })),
      regionNeurons: allGeographic,
      regionShare: allGeographic.length / index.columns,
    };
    return this.regionCache;
  }
}

export interface RegionStats {
  neurons: number;
  geographicWords: number;
  vocabularySize: number;
  buckets: { geographicInTop5: number; neurons: number }[];
  /** Neurons whose top-5 words are all geographic. */
  regionNeurons: number[];
  regionShare: number;
}
