/**
 * CLIP's zero-shot rule: p = softmax_j(logit_scale · cos(image, text_j)).
 */
export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / (Math.sqrt(na) * Math.sqrt(nb) || 1);
}

export function zeroShotLogits(
  image: Float32Array,
  texts: readonly Float32Array[],
  logitScale: number,
): number[] {
  return texts.map((text) => logitScale * cosine(image, text));
}

export function softmax(logits: readonly number[]): number[] {
  const max = Math.max(...logits);
  const exps = logits.map((logit) => Math.exp(logit - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

export function zeroShotProbabilities(
  image: Float32Array,
  texts: readonly Float32Array[],
  logitScale: number,
): number[] {
  return softmax(zeroShotLogits(image, texts, logitScale));
}
