/**
 * The emotion domain's types: what a composition request asks for and what a composition and an
 * atlas hold. The service (service.ts), the solver thread (composition-solver.ts) and the atlas
 * (atlas.ts) all speak them, so none of them imports another for its types.
 */
import type { FeatureScaling, WorkReport } from '../sparse/design.js';
import type { Selection } from '../sparse/one-vs-rest.js';

export interface ConceptSet {
  name: string;
  prompts: string[];
}

/** One binary model per concept against the rest (the article's), or one softmax model of all. */
export type CompositionModel = 'one-vs-rest' | 'multinomial';

export interface CompositionRequest {
  concepts: ConceptSet[];
  selection: Selection;
  /** Default one-vs-rest. */
  model?: CompositionModel;
  /** Neurons masked out of the fit (lexical neurons). */
  exclude: number[];
  /**
   * How attributions are scaled before the penalty (see FeatureScaling). Default "shared": the
   * attributions of all neurons are in one unit, and per-neuron standardisation lifts neurons that
   * barely move between prompts (on the embedded model it leaves 3 of 10 expression and wheel words
   * with their expression's neuron, against 9 of 10 with "shared": docs/emotion-compositions.md).
   */
  scaling?: FeatureScaling;
}

export interface WeightedNeuron {
  neuron: number;
  weight: number;
  label?: string;
}

export interface ConceptFit {
  neurons: WeightedNeuron[];
  lambda: number;
  objective: number;
  iterations: number;
  converged: boolean;
}

export interface Composition {
  fitId: string;
  model: CompositionModel;
  scaling: FeatureScaling;
  lambda: number | null;
  accuracy: number;
  samples: number;
  features: number;
  excluded: number;
  concepts: Record<string, ConceptFit>;
  cv?: { folds: number; lambdaMin: number; lambda1se: number; accuracy: number };
  /** What the fit spent (see WorkBudget): converged is false where a budget ran out. */
  work: WorkReport;
}

export interface Atlas {
  factors: number;
  objective: number;
  iterations: number;
  converged: boolean;
  emotions: { name: string; loadings: number[]; x: number; y: number }[];
  factorTops: {
    factor: number;
    emotions: { name: string; loading: number }[];
    neurons: { neuron: number; sign: 1 | -1; weight: number; label?: string }[];
  }[];
}
