/**
 * Token sequences as texts: the text of a sequence, and the tokens that text encodes to (its
 * canonical form). The hill climber replaces each proposal by its canonical form, so that the
 * score of a sequence is the score of its text (what /v1/attribution/text would report).
 */
import type { ClipTokenizer } from '../clip/tokenizer.js';

export interface TextFunctions {
  describe: (ids: readonly number[]) => string;
  canonicalize: (ids: readonly number[]) => number[] | undefined;
  /** Whether a token is its own text's encoding (memoised). */
  isOwnEncoding: (id: number) => boolean;
  /** Every token that is its own text's encoding (computed once: one BPE run per token). */
  ownEncodings: () => readonly number[];
}

/** Printable ASCII without the '&' that could start an HTML entity (and without spaces). */
const PLAIN_ASCII = /^[\x21-\x25\x27-\x7e]+$/;
const MEMO_SIZE = 200_000;

/**
 * The text and canonical form of token sequences for one tokenizer. Shortcut, exact: when every token is plain ASCII (PLAIN_ASCII, then optionally `</w>`), the text
 * is the words made of runs of tokens up to each end-of-word token, joined by spaces; the clean-up
 * (ftfy fixes, HTML unescaping, whitespace, lower case) and the pre-tokeniser both leave such text
 * alone across the spaces, so its encoding is the concatenation of the words' encodings, which
 * are memoised by token run. Other sequences go through the whole tokenizer.
 */
export function textFunctions(tokenizer: ClipTokenizer): TextFunctions {
  let functions = textFunctionsOf.get(tokenizer);
  if (!functions) textFunctionsOf.set(tokenizer, (functions = makeTextFunctions(tokenizer)));
  return functions;
}

/** One set per tokenizer, so that the memo of word encodings serves every search on the model. */
const textFunctionsOf = new WeakMap<ClipTokenizer, TextFunctions>();

function makeTextFunctions(tokenizer: ClipTokenizer): TextFunctions {
  const body = (text: string) => tokenizer.encode(text).ids.slice(1, -1);
  const pieces: (string | null | undefined)[] = new Array(tokenizer.vocabSize); // undefined: not yet known
  const endsWord = new Uint8Array(tokenizer.vocabSize);
  const piece = (id: number): string | null => {
    let text = pieces[id];
    if (text === undefined) {
      const token = tokenizer.tokenText(id);
      const ends = token.endsWith('</w>');
      const stem = ends ? token.slice(0, -4) : token;
      text = PLAIN_ASCII.test(stem) ? stem : null;
      pieces[id] = text;
      endsWord[id] = ends ? 1 : 0;
    }
    return text;
  };
  const words = new Map<string, number[]>();
  const encodeRun = (run: number[], out: number[]) => {
    const key = run.join(',');
    let ids = words.get(key);
    if (!ids) {
      ids = body(run.map((id) => pieces[id]).join(''));
      if (words.size >= MEMO_SIZE) words.clear();
      words.set(key, ids);
    }
    out.push(...ids);
  };
  /** The text of a sequence (plain ASCII tokens: their pieces, a space after each word's end). */
  const describe = (ids: readonly number[]): string => {
    let text = '';
    for (const id of ids) {
      const stem = piece(id);
      if (stem === null) return tokenizer.decode([...ids]).trim();
      text += endsWord[id] ? stem + ' ' : stem;
    }
    return text.trim();
  };
  const canonicalize = (ids: readonly number[]): number[] | undefined => {
    const out: number[] = [];
    let run: number[] = [];
    for (const id of ids) {
      if (piece(id) === null) {
        const text = describe(ids);
        return text === '' ? undefined : body(text);
      }
      run.push(id);
      if (endsWord[id]) {
        encodeRun(run, out);
        run = [];
      }
    }
    if (run.length > 0) encodeRun(run, out);
    return out;
  };
  const own = new Int8Array(tokenizer.vocabSize).fill(-1); // -1 unknown, 0 no, 1 yes
  const isOwnEncoding = (id: number): boolean => {
    if (own[id] < 0) {
      const form = canonicalize([id]);
      own[id] = form?.length === 1 && form[0] === id ? 1 : 0;
    }
    return own[id] === 1;
  };
  let all: number[] | undefined;
  const ownEncodings = (): readonly number[] => {
    if (!all) {
      all = [];
      for (let id = 0; id < tokenizer.vocabSize; id++) {
        if (id !== tokenizer.startId && id !== tokenizer.endId && isOwnEncoding(id)) all.push(id);
      }
    }
    return all;
  };
  return { describe, canonicalize, isOwnEncoding, ownEncodings };
}
