/**
 * Word arithmetic on image-based embeddings: "King - Man + Woman".
 *
 * Grammar: an expression is terms joined by `+` and `-` (a leading `-` is allowed); a term is a
 * word, several words (a phrase: "red circle - red + blue" has the terms "red circle", "red",
 * "blue"), or a quoted phrase ("…" or “…”), which may contain anything but its closing quote.
 * A `-` inside a word ("x-ray") belongs to the word; at the start of a word it is an operator.
 *
 * Scoring (Levy & Goldberg 2014, generalised from b − a + a* to any signed sum of terms t with
 * signs s_t, P the positive and N the negative terms, cosines on the centred rows):
 *   3CosAdd: score(x) = Σ_t s_t · cos(x, t)
 *   3CosMul: score(x) = Π_{t∈P} cos'(x, t) / (Π_{t∈N} cos'(x, t) + ε),  cos' = (cos + 1)/2, ε = 0.001
 * 3CosAdd ranks like the cosine with Σ_t s_t t/|t|; 3CosMul lets no single term dominate.
 */
import { badRequest } from '../errors.js';

export interface Term {
  sign: 1 | -1;
  text: string;
}

export type ArithmeticMethod = 'add' | 'mul';

export const COSMUL_EPSILON = 0.001;

type Token = { kind: 'word'; text: string; quoted: boolean } | { kind: 'op'; sign: 1 | -1 };

const QUOTES: Record<string, string> = { '"': '"', '“': '”' };

function tokenize(expression: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expression.length) {
    const ch = expression[i];
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === '+' || ch === '-') {
      tokens.push({ kind: 'op', sign: ch === '+' ? 1 : -1 });
      i++;
    } else if (ch in QUOTES) {
      const close = expression.indexOf(QUOTES[ch], i + 1);
      if (close < 0) throw badRequest(`unclosed quote at position ${i} of the expression`);
      const text = expression
        .slice(i + 1, close)
        .trim()
        .replace(/\s+/g, ' ');
      if (text === '') throw badRequest(`empty quoted phrase at position ${i} of the expression`);
      tokens.push({ kind: 'word', text, quoted: true });
      i = close + 1;
    } else {
      let end = i;
      while (end < expression.length && !/[\s+"“]/.test(expression[end])) end++;
      tokens.push({ kind: 'word', text: expression.slice(i, end), quoted: false });
      i = end;
    }
  }
  return tokens;
}

/** The signed terms of an expression; a malformed expression is a 400 that says why. */
export function parseExpression(expression: string): Term[] {
  const tokens = tokenize(expression);
  if (tokens.length === 0) throw badRequest('the expression is empty');
  const terms: Term[] = [];
  let sign: 1 | -1 | undefined;
  let phrase: string[] = [];
  let quoted = false;
  const endTerm = () => {
    if (phrase.length > 0) terms.push({ sign: sign ?? 1, text: phrase.join(' ') });
    phrase = [];
    quoted = false;
  };
  for (const token of tokens) {
    if (token.kind === 'op') {
      if (phrase.length === 0 && (terms.length > 0 || sign !== undefined)) {
        throw badRequest('two operators in a row: put a word or phrase between + and -');
      }
      endTerm();
      sign = token.sign;
    } else {
      if (phrase.length > 0 && (quoted || token.quoted)) {
        throw badRequest(`a quoted phrase must stand alone between operators (near "${token.text}")`);
      }
      phrase.push(token.text);
      quoted = token.quoted;
    }
  }
  if (phrase.length === 0) throw badRequest('the expression ends with an operator');
  endTerm();
  if (!terms.some((term) => term.sign === 1))
    throw badRequest('the expression needs at least one added term');
  return terms;
}

/** Combines per-term cosines (one array over the vocabulary per term) into 3CosAdd or 3CosMul scores. */
export function combineCosines(
  cosines: readonly Float32Array[],
  signs: readonly (1 | -1)[],
  method: ArithmeticMethod,
): Float32Array {
  const rows = cosines[0].length;
  const scores = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    if (method === 'add') {
      let sum = 0;
      for (let t = 0; t < cosines.length; t++) sum += signs[t] * cosines[t][i];
      scores[i] = sum;
    } else {
      let numerator = 1;
      let denominator = 1; // the empty product when there is no negative term
      for (let t = 0; t < cosines.length; t++) {
        const shifted = (cosines[t][i] + 1) / 2;
        if (signs[t] === 1) numerator *= shifted;
        else denominator *= shifted;
      }
      scores[i] = numerator / (denominator + COSMUL_EPSILON);
    }
  }
  return scores;
}
