/**
 * CLIP's byte-level BPE tokenizer, token-for-token identical to OpenAI CLIP's
 * `simple_tokenizer.py` + `clip.tokenize(texts, context_length, truncate=True)`.
 *
 * Algorithm:
 *  1. Clean the text (see `text-cleanup.ts`): ftfy-style fixes, HTML unescaping
 *     twice, whitespace collapsing, lower-casing.
 *  2. Pre-tokenise with CLIP's pattern: the two special tokens, English
 *     contractions, runs of letters, single digits, runs of other symbols.
 *  3. Map each piece's UTF-8 bytes to the 256 printable "byte-level" characters
 *     (GPT-2's `bytes_to_unicode`), mark the last character as end-of-word
 *     (`</w>`), then repeatedly merge the adjacent pair with the lowest merge
 *     rank until no ranked pair remains (byte-pair encoding).
 *  4. Look the resulting symbols up in the vocabulary and wrap the ids in
 *     `<|startoftext|>` … `<|endoftext|>`; if longer than the context, cut to the
 *     context length and put `<|endoftext|>` last.
 *
 * Vocabulary rule, for any merges file: the first line (`#version…`) is skipped
 * and the next `vocabSize - 514` lines are the merges, in rank order. The vocab
 * is the 256 byte-level characters, the same 256 with `</w>`, one token per
 * merge (the pair concatenated), then `<|startoftext|>` and `<|endoftext|>`.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';

import { WHITESPACE_CLASS, cleanText } from './text-cleanup.js';

export const START_OF_TEXT = '<|startoftext|>';
export const END_OF_TEXT = '<|endoftext|>';
const END_OF_WORD = '</w>';
/** 256 byte tokens, 256 end-of-word byte tokens, 2 special tokens. */
const NON_MERGE_TOKENS = 514;

export interface ClipTokenizerOptions {
  vocabSize: number;
  contextLength: number;
}

export interface EncodedText {
  ids: number[];
  truncated: boolean;
}

/** CLIP's pre-tokenisation pattern (compiled there with `regex.IGNORECASE`). */
const PRE_TOKENIZE = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${WHITESPACE_CLASS}\\p{L}\\p{N}]+`,
  'giu',
);

/** Pieces seen per tokenizer; bounded so that adversarial input cannot grow memory without limit. */
const MAX_CACHE_ENTRIES = 100_000;

/**
 * GPT-2's reversible byte → printable character table: printable Latin-1 bytes
 * map to themselves, the rest to U+0100 onwards. Returned in vocabulary order.
 */
export function byteLevelAlphabet(): { byte: number; char: string }[] {
  const inRange = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const alphabet: { byte: number; char: string }[] = [];
  for (let b = 0; b < 256; b++) if (inRange(b)) alphabet.push({ byte: b, char: String.fromCharCode(b) });
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    if (!inRange(b)) alphabet.push({ byte: b, char: String.fromCharCode(256 + shifted++) });
  }
  return alphabet;
}

export class ClipTokenizer {
  readonly startId: number;
  readonly endId: number;
  readonly vocabSize: number;
  readonly contextLength: number;

  /** id → token string. */
  private readonly vocab: string[];
  private readonly tokenIds = new Map<string, number>();
  /** "left right" pair → merge rank (lower merges first), and rank → pair. */
  private readonly mergeRanks = new Map<string, number>();
  private readonly mergePairs: [string, string][];
  private readonly byteToChar: string[] = new Array<string>(256);
  private readonly charToByte = new Map<string, number>();
  /** byte-level piece → its token ids. */
  private readonly cache = new Map<string, number[]>();
  private readonly utf8 = new TextEncoder();

  private constructor(merges: [string, string][], opts: ClipTokenizerOptions) {
    this.vocabSize = opts.vocabSize;
    this.contextLength = opts.contextLength;
    this.mergePairs = merges;
    for (const { byte, char } of byteLevelAlphabet()) {
      this.byteToChar[byte] = char;
      this.charToByte.set(char, byte);
    }
    const base = byteLevelAlphabet().map(({ char }) => char);
    this.vocab = [
      ...base,
      ...base.map((c) => c + END_OF_WORD),
      ...merges.map(([left, right]) => left + right),
      START_OF_TEXT,
      END_OF_TEXT,
    ];
    // Like Python's dict(zip(vocab, range(...))): a repeated string keeps its last id.
    this.vocab.forEach((token, id) => this.tokenIds.set(token, id));
    // Likewise bpe_ranks = dict(zip(merges, ...)): a repeated pair keeps its last rank.
    merges.forEach(([left, right], rank) => this.mergeRanks.set(`${left} ${right}`, rank));
    this.startId = this.vocab.length - 2;
    this.endId = this.vocab.length - 1;
    this.cache.set(START_OF_TEXT, [this.startId]);
    this.cache.set(END_OF_TEXT, [this.endId]);
  }

  /** Reads a merges file, gzip-compressed (detected by its magic bytes) or plain. */
  static async fromMergesFile(path: string, opts: ClipTokenizerOptions): Promise<ClipTokenizer> {
    let bytes: Buffer = await readFile(path);
    if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
    return ClipTokenizer.fromMergesText(bytes.toString('utf8'), opts, path);
  }

  static fromMergesText(text: string, opts: ClipTokenizerOptions, source = 'merges text'): ClipTokenizer {
    if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < NON_MERGE_TOKENS) {
      throw new Error(`vocabSize must be an integer >= ${NON_MERGE_TOKENS}, got ${opts.vocabSize}`);
    }
    if (!Number.isInteger(opts.contextLength) || opts.contextLength < 2) {
      throw new Error(`contextLength must be an integer >= 2, got ${opts.contextLength}`);
    }
    const needed = opts.vocabSize - NON_MERGE_TOKENS;
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop(); // a final newline ends the last line
    const available = Math.max(0, lines.length - 1);
    if (available < needed) {
      throw new Error(
        `${source}: has ${available} merge lines after the header, but vocabSize ${opts.vocabSize} needs ${needed}`,
      );
    }
    const merges = lines.slice(1, 1 + needed).map((line, i): [string, string] => {
      const parts = line.split(/\s+/).filter((p) => p.length > 0);
      if (parts.length !== 2)
        throw new Error(`${source}: line ${i + 2} is not a merge pair: ${JSON.stringify(line)}`);
      return [parts[0], parts[1]];
    });
    return new ClipTokenizer(merges, opts);
  }

  /** `[start, ...bpe ids, end]`, unpadded; cut to the context length with `end` kept last. */
  encode(text: string): EncodedText {
    // clip.tokenize(truncate=True) keeps tokens[:contextLength] and puts the end token last,
    // i.e. start + the first contextLength - 2 BPE ids + end.
    const room = this.contextLength - 2;
    const body = this.encodeBody(text, room + 1);
    return { ids: [this.startId, ...body.slice(0, room), this.endId], truncated: body.length > room };
  }

  encodeBatch(texts: string[]): EncodedText[] {
    return texts.map((text) => this.encode(text));
  }

  /** Like simple_tokenizer.decode: byte-level symbols back to UTF-8, `</w>` → space; special ids skipped. */
  decode(ids: number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      if (id === this.startId || id === this.endId) continue;
      const token = this.tokenText(id);
      for (const char of token) {
        const byte = this.charToByte.get(char);
        if (byte === undefined) throw new Error(`token ${id} has a character outside the byte alphabet`);
        bytes.push(byte);
      }
    }
    return new TextDecoder('utf-8', { ignoreBOM: true })
      .decode(Uint8Array.from(bytes))
      .replaceAll(END_OF_WORD, ' ');
  }

  /** The vocabulary string of one token, e.g. `cat</w>`. */
  tokenText(id: number): string {
    const token = Number.isInteger(id) ? this.vocab[id] : undefined;
    if (token === undefined)
      throw new RangeError(`token id ${id} is outside the vocabulary (0..${this.vocab.length - 1})`);
    return token;
  }

  /** BPE ids of the cleaned text, without the special tokens; stops once it has `limit` ids. */
  private encodeBody(text: string, limit: number): number[] {
    const ids: number[] = [];
    for (const [piece] of cleanText(text).matchAll(PRE_TOKENIZE)) {
      const symbols = this.toByteLevel(piece);
      let pieceIds = this.cache.get(symbols);
      if (pieceIds === undefined) {
        pieceIds = this.bytePairEncode(symbols).map((symbol) => this.idOf(symbol));
        if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
        this.cache.set(symbols, pieceIds);
      }
      for (const id of pieceIds) ids.push(id);
      if (ids.length >= limit) break;
    }
    return ids;
  }

  private toByteLevel(piece: string): string {
    let out = '';
    for (const byte of this.utf8.encode(piece)) out += this.byteToChar[byte];
    return out;
  }

  /**
   * CLIP's merge loop: while some adjacent pair has a rank, take the lowest-ranked pair and merge
   * all its non-overlapping occurrences, left to right. Symbols sit in a linked list (a merge keeps
   * the left index) and a min-heap holds candidate pairs keyed by (rank, index), so a long word
   * costs O(n log n) instead of the naive O(n²).
   */
  private bytePairEncode(word: string): string[] {
    if (word === START_OF_TEXT || word === END_OF_TEXT) return [word];
    const symbols = [...word];
    symbols[symbols.length - 1] += END_OF_WORD;
    const n = symbols.length;
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const heap = new MinHeap();
    const consider = (left: number) => {
      const right = left < 0 ? -1 : next[left];
      if (right < 0) return;
      const rank = this.mergeRanks.get(`${symbols[left]} ${symbols[right]}`);
      if (rank !== undefined) heap.push(rank * n + left);
    };
    for (let i = 0; i + 1 < n; i++) consider(i);

    while (heap.size > 0) {
      const rank = Math.floor(heap.peek() / n);
      const [first, second] = this.mergePairs[rank];
      const starts: number[] = []; // this pass's occurrences, in text order
      while (heap.size > 0 && Math.floor(heap.peek() / n) === rank) starts.push(heap.pop() % n);
      for (const left of starts) {
        const right = next[left];
        // Skip stale entries and occurrences overlapping one merged earlier in this pass.
        if (symbols[left] !== first || right < 0 || symbols[right] !== second) continue;
        symbols[left] = first + second;
        symbols[right] = '';
        next[left] = next[right];
        if (next[right] >= 0) prev[next[right]] = left;
        consider(prev[left]);
        consider(left);
      }
    }
    const merged: string[] = [];
    for (let i = 0; i >= 0; i = next[i]) merged.push(symbols[i]);
    return merged;
  }

  private idOf(symbol: string): number {
    const id = this.tokenIds.get(symbol);
    if (id === undefined)
      throw new Error(`BPE produced ${JSON.stringify(symbol)}, which is not in the vocabulary`);
    return id;
  }
}

/** A binary min-heap of non-negative integers. */
class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): number {
    return this.items[0];
  }

  push(value: number): void {
    const items = this.items;
    let i = items.push(value) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent] <= value) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = value;
  }

  pop(): number {
    const items = this.items;
    const top = items[0];
    const last = items.pop() as number;
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= items.length) break;
        const child = left + 1 < items.length && items[left + 1] < items[left] ? left + 1 : left;
        if (items[child] >= last) break;
        items[i] = items[child];
        i = child;
      }
      items[i] = last;
    }
    return top;
  }
}
