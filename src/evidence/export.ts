/**
 * A neuron's evidence as JSON in a shape close to Neuronpedia's feature export, so dashboard tooling
 * that reads those can read these (docs/neuron-evidence.md, "Export"). Neuronpedia's fields keep their
 * names and meaning where an image neuron has one:
 *
 *   modelId, layer, index                 which neuron (index as a string, as Neuronpedia writes it)
 *   maxActApprox                          the largest activation over the collection
 *   frac_nonzero                          the share of the collection's images where it is above 0
 *   freq_hist_data_bar_heights / _values  the activation histogram: counts and bin centres (parallel)
 *   activations                           examples with their values: the top images, then examples of
 *                                         each of 5 quantile bands, top first (quantile_from …
 *                                         quantile_to: fractions of the ranking, not activations, where
 *                                         Neuronpedia's bin_min … bin_max are activations); an image's
 *                                         value is the spatial mean of the neuron's map
 *   pos_str / pos_values, neg_str / _values  the texts the neuron speaks for most / least (its
 *                                         component of W·t/|t|): the analogue of a feature's logits
 *   explanations                          labels with scores: the catalogue's, then the automatic ones
 *
 * and adds what a CLIP neuron has beside them: top_words (the reading side) and multimodality.
 */
import type { Multimodality } from './measure.js';

export const EXPORT_FORMAT = 'neuronpedia-feature-like/1' as const;
export const EXPORT_LAYER = 'visual.layer4';

export interface ExportActivation {
  imageId: number;
  name: string;
  category: string | null;
  caption: string | null;
  thumbnailUrl: string;
  /** One value per image: the spatial mean of the neuron's map (Neuronpedia: one per token). */
  values: number[];
  maxValue: number;
  /** The quantile band the example was drawn from, as fractions of the ranking (top images: the top k/N). */
  quantile_from: number;
  quantile_to: number;
}

export interface ExportExplanation {
  description: string;
  score: number | null;
  typeName: string;
  explanationModelName: string;
}

export interface NeuronExport {
  format: typeof EXPORT_FORMAT;
  modelId: string;
  layer: string;
  index: string;
  collection: string | null;
  maxActApprox: number | null;
  frac_nonzero: number | null;
  freq_hist_data_bar_heights: number[];
  freq_hist_data_bar_values: number[];
  activations: ExportActivation[];
  pos_str: string[];
  pos_values: number[];
  neg_str: string[];
  neg_values: number[];
  explanations: ExportExplanation[];
  top_words: { word: string; activation: number }[];
  multimodality: Multimodality | null;
}

/** Bin centres of a histogram's edges (bins + 1 edges → bins centres, parallel to the counts). */
export function binCentres(edges: readonly number[]): number[] {
  return edges.slice(0, -1).map((edge, i) => (edge + edges[i + 1]) / 2);
}
