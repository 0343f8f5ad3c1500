/**
 * The "neuron activations" of the article: each neuron's map of the last convolutional layer
 * ([C, h, w], from the visual trunk) averaged over the h×w grid, which is what the bilinear form
 * x_imgᵀ W x_text reads when spatial structure is ignored.
 */

/** Mean over the h×w grid of each of C neuron maps laid out [C, h, w]. */
export function spatialMeans(neurons: Float32Array, channels: number): Float32Array {
  const cells = neurons.length / channels;
  const means = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    let sum = 0;
    for (let i = c * cells; i < (c + 1) * cells; i++) sum += neurons[i];
    means[c] = sum / cells;
  }
  return means;
}
