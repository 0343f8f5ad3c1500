/**
 * Emotion composition (Goh et al. 2021, "emotion neurons"): which few neurons make up an emotion.
 *
 * Samples: for each concept (an emotion word under each template, or any concept's own prompts) the
 * attribution vector a = W·t/|t| of every prompt is one sample in R^C, labelled by its concept.
 * One-vs-rest L1 logistic regression on the scaled samples (regularization-path.ts; scaling: see
 * FeatureScaling), or as an option one multinomial (softmax) L1 fit of all concepts at once
 * (multinomial-path.ts), gives each concept a sparse weight vector: its composition, the neurons with
 * nonzero weight. Weights are the coefficients on the scaled features (the ones the penalty acts on),
 * so they compare across neurons.
 *
 * Atlas: NMF factors and a 2-D layout of the default composition (atlas.ts).
 *
 * The fits and atlases run on a worker thread (composition-solver.ts): the whole wheel's fit takes
 * seconds of CPU, which would otherwise hold every other request.
 */
import { createHash } from 'node:crypto';
import { cacheKey, type BinaryCache } from '../cache/index.js';
import { badRequest } from '../errors.js';
import { CompositionSolver } from './composition-solver.js';
import { EMOTION_TEMPLATES, WHEEL_EMOTION_NAMES, wheelEmotion } from './feelings-wheel.js';
import { MULTINOMIAL_SWEEP_LIMIT } from '../sparse/multinomial-path.js';
import type { FeatureScaling } from '../sparse/design.js';
import type { AttributionService } from '../attribution/service.js';
import { catalogueLexicalSet, type LexicalSet, type LexicalUse } from '../attribution/lexical-neurons.js';
import type {
  Atlas,
  Composition,
  CompositionRequest,
  ConceptFit,
  ConceptSet,
  WeightedNeuron,
} from './types.js';

export const LIMITS = { concepts: 256, promptsPerConcept: 64, templates: 16, samples: 4096, folds: 10 };
export const DEFAULT_NEURONS_PER_CONCEPT = 5;
/** See CompositionRequest.scaling. */
export const DEFAULT_SCALING: FeatureScaling = 'shared';
/**
 * classes × samples × neurons (× 3·folds with cv): the largest multinomial fit one request may ask
 * for. The whole wheel on the embedded model (126 × 378 × 512 ≈ 24e6) takes 10–20 s on two cores.
 */
export const MULTINOMIAL_WORK_LIMIT = 25e6;

/** The wheel's emotions under templates, as concept sets ("{}" stands for the word). */
export function emotionConcepts(emotions?: readonly string[], templates?: readonly string[]): ConceptSet[] {
  const names = emotions ?? WHEEL_EMOTION_NAMES;
  const used = templates ?? EMOTION_TEMPLATES;
  for (const template of used)
    if (!template.includes('{}')) throw badRequest(`template "${template}" has no {}`);
  const seen = new Set<string>();
  return names.flatMap((raw) => {
    const emotion = wheelEmotion(raw);
    if (!emotion) throw badRequest(`unknown emotion "${raw}": not a word of the feelings wheel`);
    if (seen.has(emotion.name)) return [];
    seen.add(emotion.name);
    return [{ name: emotion.name, prompts: used.map((template) => template.replaceAll('{}', emotion.name)) }];
  });
}

/** Checks a request's sizes and returns its stable id (a hash of the normalised request). */
export function validate(request: CompositionRequest, neuronCount: number): string {
  const { concepts, selection, exclude } = request;
  if (concepts.length < 2) throw badRequest('a sparse fit needs at least 2 concepts (classes)');
  if (concepts.length > LIMITS.concepts) throw badRequest(`at most ${LIMITS.concepts} concepts`);
  const names = new Set<string>();
  let samples = 0;
  for (const concept of concepts) {
    if (names.has(concept.name)) throw badRequest(`concept "${concept.name}" is given twice`);
    names.add(concept.name);
    if (concept.prompts.length < 2) throw badRequest(`concept "${concept.name}" needs at least 2 prompts`);
    samples += concept.prompts.length;
  }
  if (samples > LIMITS.samples) throw badRequest(`at most ${LIMITS.samples} prompts in all, got ${samples}`);
  const outOfRange = exclude.find(
    (neuron) => !(Number.isInteger(neuron) && neuron >= 0 && neuron < neuronCount),
  );
  if (outOfRange !== undefined)
    throw badRequest(`neuron ${outOfRange} is out of range (0 to ${neuronCount - 1})`);
  if (selection.kind === 'lambda' && !(selection.lambda >= 0)) throw badRequest('lambda must be ≥ 0');
  if (selection.kind === 'support' && !(selection.size >= 1 && selection.size <= neuronCount))
    throw badRequest(`neuronsPerEmotion must be from 1 to ${neuronCount}`);
  if (selection.kind === 'cv') {
    const smallest = Math.min(...concepts.map((concept) => concept.prompts.length));
    if (!(selection.folds >= 2 && selection.folds <= Math.min(LIMITS.folds, samples)))
      throw badRequest(`cv must be from 2 to ${Math.min(LIMITS.folds, samples)} folds`);
    if (smallest < 2) throw badRequest('cross-validation needs at least 2 prompts per concept');
  }
  if (request.model === 'multinomial') {
    // One multinomial fit costs about classes × samples × neurons per sweep, every λ of a path and
    // every fold again: past this bound it would outlast a request (minutes on two cores).
    // A cross-validation runs a whole λ path per fold: about three single paths' work each.
    const work =
      concepts.length * samples * neuronCount * (selection.kind === 'cv' ? 3 * selection.folds : 1);
    if (work > MULTINOMIAL_WORK_LIMIT)
      throw badRequest(
        `this multinomial fit is too large for one request (${concepts.length} classes × ${samples} prompts × ${neuronCount} neurons${selection.kind === 'cv' ? ` × ${selection.folds} folds` : ''}); ` +
          'use fewer concepts, a fixed lambda instead of cv, or the one-vs-rest model',
      );
  }
  const normalised = {
    concepts: concepts.map((concept) => [concept.name, concept.prompts]),
    selection,
    exclude: [...new Set(exclude)].sort((a, b) => a - b),
    // Only non-default choices enter the hash, so the fit ids of earlier requests stay what they were.
    ...(request.model === 'multinomial' ? { model: 'multinomial' } : {}),
    ...(request.scaling === 'per-neuron' ? { scaling: 'per-neuron' } : {}),
  };
  return createHash('sha256').update(JSON.stringify(normalised)).digest('hex').slice(0, 16);
}

/** The default composition and the lexical set it masked (what GET /v1/emotions reports). */
export interface DefaultComposition {
  composition: Composition;
  lexical: LexicalUse;
}

/** Names the solver's version in cache keys: a solver change that moves results bumps it. */
const COMPOSITION_CACHE_VERSION = 'sparse-composition.v4';

/** Compositions and atlases kept in this process as well as in the cache (most recent first out). */
const MEMO_ENTRIES = 64;

export class EmotionService {
  private readonly pending = new Map<string, Promise<Composition>>();
  /**
   * An in-process tier in front of the shared cache: the default fit takes seconds, and when Redis
   * is down (the cache then answers nothing) GET /v1/emotions must not redo it on every request.
   */
  private readonly memo = new Map<string, Composition | Atlas>();

  constructor(
    private readonly attribution: AttributionService,
    private readonly cache: BinaryCache,
    /** Sweeps a multinomial fit may spend (FIT_MAX_SWEEPS). */
    private readonly fitMaxSweeps = MULTINOMIAL_SWEEP_LIMIT,
    private readonly solver = new CompositionSolver(),
  ) {}

  /** Stops the solver's thread. */
  close(): Promise<void> {
    return this.solver.close();
  }

  /** Where the whole lexical set comes from once the word index is up (set by the app). */
  private lexicalSource: (() => Promise<LexicalSet>) | undefined;

  /** Takes the service's lexical set (catalogue and detected neurons) from `source`. */
  useLexicalNeurons(source: () => Promise<LexicalSet>): void {
    this.lexicalSource = source;
  }

  /**
   * The lexical neurons fits mask by default (src/attribution/lexical-neurons.ts): the catalogue's
   * lexical family and the word index's detected neurons; the catalogue's alone until a source is set.
   */
  lexicalNeurons(): Promise<LexicalSet> {
    if (this.lexicalSource) return this.lexicalSource();
    return Promise.resolve(catalogueLexicalSet(this.attribution.catalogue, 'no word index attached'));
  }

  /** The sparse composition of each concept; computed once per request and model, then cached. */
  compose(request: CompositionRequest): Promise<Composition> {
    const key = this.compositionKey(request);
    const fitId = key.fitId;
    let result = this.pending.get(key.key);
    if (!result) {
      result = (async () => {
        const known = this.recall<Composition>(key.key) ?? (await this.cache.getJson<Composition>(key.key));
        if (known) return this.remember(key.key, known);
        const composition = await this.fit(request, fitId);
        await this.cache.setJson(key.key, composition);
        return this.remember(key.key, composition);
      })().finally(() => this.pending.delete(key.key));
      this.pending.set(key.key, result);
    }
    return result;
  }

  /** A request's fit id (validating it) and the cache key its composition is kept under. */
  compositionKey(request: CompositionRequest): { fitId: string; key: string } {
    const fitId = validate(request, this.attribution.model.neuronCount);
    return { fitId, key: this.keyOf(fitId) };
  }

  /** The cache key of the composition with this fit id, on this model. */
  keyOf(fitId: string): string {
    return cacheKey(this.attribution.model.sha256, COMPOSITION_CACHE_VERSION, fitId);
  }

  /** The default composition known before the lexical set is (shipped with the model; see preloadDefault). */
  private knownDefault: DefaultComposition | undefined;

  /**
   * Takes the default composition and its atlases computed elsewhere (the model directory's
   * precomputed file) as the answers to their keys, so they are served without fitting, and
   * without waiting for the lexical set when the caller has checked it will be the one this
   * composition masked (same model, vocabulary and threshold: the detection is deterministic).
   * Only for results this service would compute itself: the fit and the atlas are deterministic,
   * and the keys name the model, the fit id and the solver's version.
   */
  preloadDefault(
    key: string,
    known: DefaultComposition,
    atlases: Readonly<Record<string, Atlas>> = {},
  ): void {
    this.remember(key, known.composition);
    for (const [factors, atlas] of Object.entries(atlases))
      this.remember(this.atlasKey(known.composition.fitId, Number(factors)), atlas);
    this.knownDefault = known;
  }

  /**
   * The default emotion composition: the whole wheel, the article's templates, 5 neurons each, the
   * lexical neurons masked as in the article; with the lexical set it masked.
   */
  async defaultComposition(): Promise<DefaultComposition> {
    if (this.knownDefault) return this.knownDefault;
    const lexical = await this.lexicalNeurons();
    const composition = await this.compose({ ...defaultEmotionRequest(), exclude: lexical.neurons });
    return { composition, lexical: lexical.use };
  }

  /** NMF atlas of the default composition with `factors` factors, and a seeded 2-D layout. */
  async atlas(factors: number): Promise<Atlas> {
    const { composition } = await this.defaultComposition();
    const key = this.atlasKey(composition.fitId, factors);
    const known = this.recall<Atlas>(key) ?? (await this.cache.getJson<Atlas>(key));
    if (known) return this.remember(key, known);
    const atlas = await this.solver.atlas(composition, factors);
    await this.cache.setJson(key, atlas);
    return this.remember(key, atlas);
  }

  private atlasKey(fitId: string, factors: number): string {
    return cacheKey(this.attribution.model.sha256, 'emotion-atlas', fitId, String(factors));
  }

  /** Keys name what they hold (sparse-composition… or emotion-atlas…), so the type is the caller's. */
  private recall<T extends Composition | Atlas>(key: string): T | undefined {
    return this.memo.get(key) as T | undefined;
  }

  private remember<T extends Composition | Atlas>(key: string, value: T): T {
    this.memo.delete(key);
    this.memo.set(key, value);
    if (this.memo.size > MEMO_ENTRIES) this.memo.delete(this.memo.keys().next().value!);
    return value;
  }

  private async fit(request: CompositionRequest, fitId: string): Promise<Composition> {
    const rows: Float32Array[] = [];
    const labels: number[] = [];
    for (const [k, concept] of request.concepts.entries()) {
      // Prompts of one concept at a time: the micro-batcher groups them, the cache keeps them.
      const vectors = await Promise.all(
        concept.prompts.map((prompt) => this.attribution.textVector(prompt, 'unit')),
      );
      for (const vector of vectors) {
        rows.push(vector);
        labels.push(k);
      }
    }
    const model = request.model ?? 'one-vs-rest';
    const scaling = request.scaling ?? DEFAULT_SCALING;
    const exclude = [...new Set(request.exclude)];
    const result = await this.solver.compose({
      rows,
      labels,
      classCount: request.concepts.length,
      selection: request.selection,
      model,
      exclude,
      scaling,
      maxSweeps: this.fitMaxSweeps,
    });
    const concepts: Record<string, ConceptFit> = {};
    request.concepts.forEach((concept, k) => {
      const fit = result.classes[k];
      const neurons: WeightedNeuron[] = [];
      fit.coef.forEach((weight, neuron) => {
        if (weight === 0) return;
        const label = this.attribution.catalogue.label(neuron);
        neurons.push(label === undefined ? { neuron, weight } : { neuron, weight, label });
      });
      neurons.sort((a, b) => b.weight - a.weight || a.neuron - b.neuron);
      concepts[concept.name] = {
        neurons,
        lambda: fit.lambda,
        objective: fit.objective,
        iterations: fit.iterations,
        converged: fit.converged,
      };
    });
    return {
      fitId,
      model,
      scaling,
      lambda: result.lambda,
      accuracy: result.accuracy,
      samples: rows.length,
      features: result.features,
      excluded: exclude.length,
      concepts,
      work: result.work,
      ...(result.cv ? { cv: result.cv } : {}),
    };
  }
}

export function defaultEmotionRequest(): CompositionRequest {
  return {
    concepts: emotionConcepts(),
    selection: { kind: 'support', size: DEFAULT_NEURONS_PER_CONCEPT },
    exclude: [],
  };
}
