/**
 * The CLIP tokenizer against OpenAI's `clip.tokenize` (the shared cases, made with ftfy 6.3.1) and
 * against the project's Python reference (test/fixtures/tokenizer-extra-cases.json, made by
 * tools/tokenizer/extra_cases.py on ftfy 6.3.1 + regex), plus properties that need no reference:
 * truncation, decoding, the vocabulary rule on a tiny merges file, and the too-short-file error.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';

import { cleanText, pythonHtmlUnescape } from '../src/clip/text-cleanup.js';
import { ClipTokenizer, byteLevelAlphabet } from '../src/clip/tokenizer.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MERGES = path.resolve(repoRoot, '../shared/clip/bpe_simple_vocab_16e6.txt.gz');
const SHARED_CASES = path.resolve(repoRoot, '../shared/clip/tokenizer-cases.json');
const EXTRA_CASES = path.resolve(repoRoot, 'test/fixtures/tokenizer-extra-cases.json');
const CLIP = { vocabSize: 49408, contextLength: 77 };

interface Case {
  name?: string;
  text: string;
  ids: number[];
  truncated: boolean;
}

function readCases(file: string): Case[] {
  return (JSON.parse(readFileSync(file, 'utf8')) as { cases: Case[] }).cases;
}

/** A text as a one-line TAP message (JSON.stringify leaves U+0085, U+2028 and U+2029 raw). */
function show(text: string): string {
  return JSON.stringify(text).replace(
    /[\u0080-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** The shared file pads ids with zeros to the context length; compare unpadded. */
function unpadded(ids: number[]): number[] {
  let end = ids.length;
  while (end > 0 && ids[end - 1] === 0) end--;
  return ids.slice(0, end);
}

const clip = await ClipTokenizer.fromMergesFile(MERGES, CLIP);

t.test('vocabulary of CLIP’s merges file', async (t) => {
  t.equal(clip.startId, 49406);
  t.equal(clip.endId, 49407);
  t.equal(clip.vocabSize, 49408);
  t.equal(clip.contextLength, 77);
  t.equal(clip.tokenText(49406), '<|startoftext|>');
  t.equal(clip.tokenText(49407), '<|endoftext|>');
  t.equal(clip.tokenText(320), 'a</w>');
  t.equal(clip.tokenText(2368), 'cat</w>');
  t.equal(clip.tokenText(0), '!');
  t.equal(clip.tokenText(256), '!</w>');
  // The last token before the specials is merge line 48,894 (line 48,895 of the file, after the header).
  const lines = gunzipSync(readFileSync(MERGES)).toString('utf8').split('\n');
  t.ok(lines.length - 1 > 48894, 'the file has more merge lines than the vocabulary uses');
  t.equal(clip.tokenText(49405), lines[48894].split(' ').join(''));
  t.equal(clip.tokenText(512), lines[1].split(' ').join(''));
  t.throws(() => clip.tokenText(49408), RangeError);
  t.throws(() => clip.tokenText(-1), RangeError);
});

t.test('matches OpenAI clip.tokenize on every shared case', async (t) => {
  const cases = readCases(SHARED_CASES);
  t.equal(cases.length, 66);
  for (const c of cases) {
    t.same(clip.encode(c.text), { ids: unpadded(c.ids), truncated: c.truncated }, show(c.text));
  }
});

t.test('matches the Python reference on every extra case', async (t) => {
  const fixture = JSON.parse(readFileSync(EXTRA_CASES, 'utf8')) as { ftfy: string; cases: Case[] };
  t.equal(fixture.ftfy, '6.3.1', 'made with the ftfy version OpenAI’s cases used');
  t.ok(fixture.cases.length >= 80);
  for (const c of fixture.cases) {
    t.same(clip.encode(c.text), { ids: c.ids, truncated: c.truncated }, `${c.name}: ${show(c.text)}`);
  }
});

t.test('empty, blank and long inputs', async (t) => {
  const bare = { ids: [49406, 49407], truncated: false };
  t.same(clip.encode(''), bare);
  t.same(clip.encode(' \t\n\r\u3000\u00a0 '), bare);
  t.same(clip.encode('\x00\ufeff'), bare);

  const long = clip.encode('a photo of a cat '.repeat(40));
  t.equal(long.ids.length, 77);
  t.equal(long.ids[0], clip.startId);
  t.equal(long.ids[76], clip.endId, 'the end token is kept last');
  t.same(long.ids.slice(1, 6), [320, 1125, 539, 320, 2368]);
  t.equal(long.truncated, true);

  const fits = clip.encode(Array(75).fill('word').join(' '));
  t.same([fits.ids.length, fits.truncated], [77, false]);
  const over = clip.encode(Array(76).fill('word').join(' '));
  t.same([over.ids.length, over.truncated, over.ids[76]], [77, true, clip.endId]);
});

t.test('special tokens written in the text become the special ids', async (t) => {
  t.same(clip.encode('<|startoftext|>hi<|endoftext|>').ids.slice(1, -1), [49406, 1883, 49407]);
  t.same(clip.encode('<|ENDOFTEXT|>').ids, [49406, 49407, 49407], 'after lower-casing');
});

t.test('clean-up steps that the reference cases rely on', async (t) => {
  t.equal(cleanText('  “Smart”  ‘quotes’ '), '"smart" \'quotes\'');
  t.equal(cleanText('ﬁnal ﬂight'), 'final flight');
  t.equal(cleanText('ＦＵＬＬ\u3000ＷＩＤＴＨ ｶﾀｶﾅ'), 'full width カタカナ');
  t.equal(cleanText('cafÃ© donâ€™t'), "café don't");
  t.equal(cleanText('fish &amp;amp; chips'), 'fish & chips');
  t.equal(cleanText('e\u0301'), 'é', 'NFC');
  t.equal(cleanText('a\r\nb\u2028c\x85d'), 'a b c…d', 'C1 NEL is read as Windows-1252 first');
  t.equal(cleanText('\x1b[31mred\x1b[0m'), 'red');
  t.equal(cleanText('ΟΔΟΣ'), 'οδος', 'final sigma');
  t.equal(cleanText('lone \ud800 surrogate'), 'lone \ufffd surrogate');
  t.same(clip.encode('x\ud800y'), clip.encode('x\ufffdy'));
  // Python's html.unescape, which CLIP applies twice after ftfy.
  t.equal(
    pythonHtmlUnescape('&lt;&#39;&#x27;&eacute &notit; &#150;&#0;&#7;&#xD800;'),
    "<''é ¬it; –\ufffd\ufffd",
  );
});

t.test('decode and tokenText', async (t) => {
  const { ids } = clip.encode('A photo of a cat, naïve 東京!');
  t.equal(clip.decode(ids), 'a photo of a cat , naïve 東京 ! ');
  t.equal(clip.decode([49406, 320, 49407]), 'a ');
  t.same(
    clip.encodeBatch(['a photo of a cat', '']),
    [clip.encode('a photo of a cat'), clip.encode('')],
    'encodeBatch is encode per text',
  );
});

/** A merges file of four merges: "h e", "l l", "he ll", "hell o</w>". */
const TINY_MERGES = '#version: tiny\nh e\nl l\nhe ll\nhell o</w>\n';
const byteId = (char: string) => byteLevelAlphabet().findIndex((entry) => entry.char === char);

t.test('any merges file: the vocabulary rule on a tiny file', async (t) => {
  const tiny = ClipTokenizer.fromMergesText(TINY_MERGES, { vocabSize: 518, contextLength: 8 });
  t.same([tiny.startId, tiny.endId], [516, 517]);
  t.same(
    [512, 513, 514, 515].map((id) => tiny.tokenText(id)),
    ['he', 'll', 'hell', 'hello</w>'],
  );
  t.same(tiny.encode('Hello').ids, [516, 515, 517]);
  t.same(
    tiny.encode('hell').ids,
    [516, 512, byteId('l'), 256 + byteId('l'), 517],
    '"l l</w>" is not a merge',
  );
  t.same(tiny.encode('hello hello hello hello hello hello hello'), {
    ids: [516, 515, 515, 515, 515, 515, 515, 517],
    truncated: true,
  });
  t.equal(tiny.decode(tiny.encode('hello, hell').ids), 'hello , hell ');

  // A smaller vocabulary uses only the first merges of the same file.
  const two = ClipTokenizer.fromMergesText(TINY_MERGES, { vocabSize: 516, contextLength: 77 });
  t.same([two.startId, two.endId], [514, 515]);
  t.same(two.encode('hello').ids, [514, 512, 513, 256 + byteId('o'), 515]);
});

t.test('each merge pass merges all occurrences before a newly formed, better-ranked pair', async (t) => {
  // "ab a" outranks "a b" although it can only form after it: on "ababab" CLIP merges both "a b"
  // first (ab ab a b</w>), then "ab a" once (ab aba b</w>).
  const tok = ClipTokenizer.fromMergesText('#version\nab a\na b\na b</w>\n', {
    vocabSize: 517,
    contextLength: 77,
  });
  t.same(tok.encode('ababab').ids, [515, 513, 512, 256 + byteId('b'), 516]);
  t.equal(tok.encode('ab'.repeat(3000)).ids.length, 77, 'long words stay fast (no quadratic merge loop)');
});

t.test('fromMergesFile reads gzip and plain files, and rejects a too-short one', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'clip-merges-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const plain = path.join(dir, 'tiny.txt');
  const gzipped = path.join(dir, 'tiny.txt.gz');
  writeFileSync(plain, TINY_MERGES);
  writeFileSync(gzipped, gzipSync(TINY_MERGES));
  for (const file of [plain, gzipped]) {
    const tok = await ClipTokenizer.fromMergesFile(file, { vocabSize: 518, contextLength: 77 });
    t.same(tok.encode('hello').ids, [516, 515, 517], path.basename(file));
  }
  await t.rejects(
    ClipTokenizer.fromMergesFile(gzipped, { vocabSize: 520, contextLength: 77 }),
    /tiny\.txt\.gz.*4 merge lines.*vocabSize 520 needs 6/,
  );
  t.throws(
    () => ClipTokenizer.fromMergesText('#version\nh e\n', { vocabSize: 600, contextLength: 77 }),
    /needs 86/,
  );
  t.throws(
    () => ClipTokenizer.fromMergesText(TINY_MERGES, { vocabSize: 100, contextLength: 77 }),
    /vocabSize/,
  );
});

// Merges load time and prompts per second are measured by bench/core.ts, against budgets.
