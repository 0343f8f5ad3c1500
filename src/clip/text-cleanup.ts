/**
 * The text clean-up that CLIP's `simple_tokenizer.py` applies before BPE:
 *
 *   basic_clean:      ftfy.fix_text(text) → html.unescape(html.unescape(text)) → strip()
 *   whitespace_clean: re.sub(r'\s+', ' ', text).strip()
 *   then:             .lower()
 *
 * `fixText` re-implements the parts of ftfy 6.3's `fix_text` (default
 * configuration) that change tokens on real text, in ftfy's order, per line,
 * repeated until nothing changes:
 *   unescape_html ("auto": skipped from the first line containing '<' on) →
 *   fix_encoding (UTF-8 mojibake read as Latin-1 / Windows-1252, with
 *   restore_byte_a0) → fix_c1_controls → fix_latin_ligatures →
 *   fix_character_width → uncurl_quotes → fix_line_breaks → fix_surrogates →
 *   remove_terminal_escapes → remove_control_chars → NFC.
 *
 * Known deviations from ftfy (measured against ftfy 6.3.1: identical on CLIP's
 * and our reference cases, and on realistic mojibake; see the tokenizer tests):
 *  - mojibake is recognised by our own conservative clue (MOJIBAKE_CLUE below),
 *    not by ftfy's badness heuristic, so odd mixes of accented capitals and
 *    symbols ("Ä–Ö", "×€") can be judged differently;
 *  - only the Latin-1 and Windows-1252 readings are tried: no Windows-1250/1251/
 *    1253/1254/1257, ISO-8859-2, MacRoman or CP437 mojibake, no CESU-8 or Java's
 *    modified UTF-8, and lost bytes are recognised as '�' only (not as '?').
 */
import { DecodingMode, decodeHTML } from 'entities';

/**
 * Python `regex`'s `\s` (Unicode White_Space), for a character class: JavaScript's
 * `\s` also matches U+FEFF and misses U+0085.
 */
export const WHITESPACE_CLASS =
  '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WHITESPACE_RUN = new RegExp(`[${WHITESPACE_CLASS}]+`, 'gu');
/** `whitespace_clean(basic_clean(text)).lower()`, exactly as CLIP's encoder sees text. */
export function cleanText(text: string): string {
  const unescaped = pythonStrip(pythonHtmlUnescape(pythonHtmlUnescape(fixText(text))));
  return pythonStrip(unescaped.replace(WHITESPACE_RUN, ' ')).toLowerCase();
}

const PYTHON_SPACE = new RegExp(`[${WHITESPACE_CLASS}\\x1c-\\x1f]`);

/** Python's `str.strip()`: White_Space plus U+001C–U+001F (a loop, not a regex: no backtracking). */
function pythonStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && PYTHON_SPACE.test(text[start])) start++;
  while (end > start && PYTHON_SPACE.test(text[end - 1])) end--;
  return text.slice(start, end);
}

// ---------------------------------------------------------------------------
// ftfy.fix_text

export function fixText(text: string): string {
  let unescape = true;
  let out = '';
  for (const line of text.match(/[^\n]*\n|[^\n]+$/g) ?? []) {
    if (line.includes('<')) unescape = false; // ftfy's "auto" stays off for the following lines too
    out += fixSegment(line, unescape);
  }
  return out;
}

function fixSegment(segment: string, unescape: boolean): string {
  for (;;) {
    const before = segment;
    let text = unescape ? ftfyUnescapeHtml(segment) : segment;
    text = fixEncoding(text);
    text = fixC1Controls(text);
    text = replaceChars(text, LATIN_LIGATURES);
    text = replaceChars(text, WIDTH_MAP);
    text = text.replace(/[\u02bc\u2018-\u201b]/g, "'").replace(/[\u201c-\u201f]/g, '"');
    text = text.replace(/\r\n|[\r\u2028\u2029\u0085]/g, '\n');
    text = text.replace(/[\ud800-\udfff]/gu, '\ufffd'); // lone surrogates (pairs are already characters)
    // eslint-disable-next-line no-control-regex
    text = text.replace(/\x1b\[(?:\p{Nd}|;)*[a-zA-Z]/gu, ''); // ANSI terminal escapes
    // eslint-disable-next-line no-control-regex
    text = text.replace(/[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g, '');
    segment = text.normalize('NFC');
    if (segment === before) return segment;
  }
}

function replaceChars(text: string, table: Map<string, string>): string {
  let out = '';
  for (const char of text) out += table.get(char) ?? char;
  return out;
}

/** ftfy's fix_latin_ligatures: typographic Latin ligatures and legacy digraphs. */
const LATIN_LIGATURES = new Map<string, string>(
  Object.entries({
    Ĳ: 'IJ',
    ĳ: 'ij',
    ŉ: 'ʼn',
    Ǳ: 'DZ',
    ǲ: 'Dz',
    ǳ: 'dz',
    Ǆ: 'DŽ',
    ǅ: 'Dž',
    ǆ: 'dž',
    Ǉ: 'LJ',
    ǈ: 'Lj',
    ǉ: 'lj',
    Ǌ: 'NJ',
    ǋ: 'Nj',
    ǌ: 'nj',
    ﬀ: 'ff',
    ﬁ: 'fi',
    ﬂ: 'fl',
    ﬃ: 'ffi',
    ﬄ: 'ffl',
    ﬅ: 'ſt',
    ﬆ: 'st',
  }),
);

/** ftfy's fix_character_width: U+3000 → space, U+FF01–U+FFEF → their NFKC form. */
const WIDTH_MAP = (() => {
  const map = new Map<string, string>([['\u3000', ' ']]);
  for (let cp = 0xff01; cp < 0xfff0; cp++) {
    const char = String.fromCharCode(cp);
    const standard = char.normalize('NFKC');
    if (standard !== char) map.set(char, standard);
  }
  return map;
})();

// ---------------------------------------------------------------------------
// Mojibake (ftfy's fix_encoding, restricted to UTF-8 read as Latin-1 / Windows-1252)

/** Windows-1252 bytes 0x80–0x9F; the five undefined ones decode to the C1 control itself ("sloppy"). */
const CP1252_HIGH =
  '\u20ac\x81\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\x8d\u017d\x8f' +
  '\x90\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\x9d\u017e\u0178';
const CP1252_BYTE = new Map<string, number>([...CP1252_HIGH].map((char, i) => [char, 0x80 + i]));

const CONTINUATION = `\\u0080-\\u00bf${CP1252_HIGH}`;
/**
 * Stand-in for ftfy's badness heuristic (our own, deliberately conservative):
 * the text looks like UTF-8 read as Latin-1/Windows-1252 when it has
 *  - "Â", "Ã", "Ä" or "Å" followed by a continuation character ("Ã©", "Â£", "Å‚");
 *  - another two-byte lead (U+00C6–U+00DF) followed by a Latin-1 symbol or C1
 *    control, not by « » or the Windows-1252 punctuation that legitimately follows
 *    capitals ("Ð°" is mojibake, "JOSÉ’S" and "«CAFÉ»" are not);
 *  - a three- or four-byte lead followed by two or three continuations ("â€™", "ðŸ˜€");
 *  - a lead followed by '�' (lossy mojibake), or "Â"/"Ã" whose A0 byte became a
 *    space ("Â " for a no-break space, "voilÃ le").
 */
const MOJIBAKE_CLUE = new RegExp(
  [
    `[\\u00c2-\\u00c5][${CONTINUATION}]`,
    `[\\u00c6-\\u00df][\\u0080-\\u009f\\u00a1-\\u00aa\\u00ac\\u00ae-\\u00ba\\u00bc-\\u00bf]`,
    `[\\u00e0-\\u00ef][${CONTINUATION}]{2}`,
    `[\\u00f0-\\u00f4][${CONTINUATION}]{3}`,
    `[\\u00c2-\\u00f4]\\ufffd`,
    `\\u00c2 `,
    `(?<![A-Z])\\u00c3 (?! |quele|quela|quilo|s )`,
  ].join('|'),
  'u',
);
/** Runs of mojibake inside otherwise correct text; a space may stand for a lost A0 byte. */
const MOJIBAKE_RUN = new RegExp(
  `(?<![${CONTINUATION}])(?:[\\u00c2-\\u00df][${CONTINUATION} ]|[\\u00e0-\\u00ef][${CONTINUATION} ]{2}|[\\u00f0-\\u00f4][${CONTINUATION} ]{3})+`,
  'gu',
);

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function fixEncoding(text: string): string {
  for (;;) {
    const fixed = fixEncodingOneStep(text);
    if (fixed === text) return text;
    text = fixed;
  }
}

function fixEncodingOneStep(text: string): string {
  if (!/[\u0080-\uffff]/.test(text) || !MOJIBAKE_CLUE.test(text)) return text;
  const whole = decodeAsUtf8(text);
  if (whole !== undefined) return whole;
  // decode_inconsistent_utf8: fix the runs that decode, leave the rest.
  const runs = text.replace(MOJIBAKE_RUN, (run) => (run.length < text.length ? fixEncoding(run) : run));
  if (runs !== text) return runs;
  // ftfy then reads leftover C1 controls as Windows-1252 (its latin-1 → windows-1252 step and
  // fix_c1_controls both come down to that here).
  return fixC1Controls(text);
}

/** The text's Latin-1 or else Windows-1252 bytes (with restore_byte_a0), if they are valid UTF-8. */
function decodeAsUtf8(text: string): string | undefined {
  for (const [encode, lossy] of [
    [encodeLatin1, false],
    [encodeSloppyCp1252, true],
  ] as const) {
    const bytes = encode(text);
    if (bytes === undefined) continue;
    try {
      const restored = restoreByteA0(bytes);
      return strictUtf8.decode(lossy ? replaceLossySequences(restored) : restored);
    } catch {
      // not UTF-8 in this reading: try the next encoding
    }
  }
  return undefined;
}

function encodeLatin1(text: string): Uint8Array | undefined {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff || code === 0x1a) return undefined;
    bytes[i] = code;
  }
  return bytes;
}

function encodeSloppyCp1252(text: string): Uint8Array | undefined {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    const code = char.charCodeAt(0);
    const byte =
      code >= 0xa0 && code <= 0xff
        ? code
        : code < 0x80
          ? code
          : code === 0xfffd
            ? 0x1a
            : CP1252_BYTE.get(char);
    if (byte === undefined || code === 0x1a) return undefined;
    bytes[i] = byte;
  }
  return bytes;
}

/**
 * ftfy's restore_byte_a0: a space that was once the byte A0 inside a UTF-8
 * sequence (e.g. "Ã " for "à") is put back, so that the sequence decodes.
 */
function restoreByteA0(bytes: Uint8Array): Uint8Array {
  let binary = binaryString(bytes);
  const altered =
    /[\xc2\xc3\xc5\xce\xd0\xd9] |[\xe2\xe3] [\x80-\x84\x86-\x9f\xa1-\xbf]|[\xe0-\xe3][\x80-\x84\x86-\x9f\xa1-\xbf] |\xf0 [\x80-\xbf][\x80-\xbf]|\xf0[\x80-\xbf] [\x80-\xbf]|\xf0[\x80-\xbf][\x80-\xbf] /g;
  if (!binary.match(altered)) return bytes;
  binary = binary.replace(/\xc3 (?! |quele|quela|quilo|s )/g, '\xc3\xa0 ');
  binary = binary.replace(altered, (seq) => seq.replaceAll(' ', '\xa0'));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/**
 * ftfy's replace_lossy_sequences (without its '?' variants): a UTF-8 sequence
 * with bytes lost to '�' (encoded as 1A by the sloppy codec) becomes one '�'.
 */
function replaceLossySequences(bytes: Uint8Array): Uint8Array {
  const binary = binaryString(bytes);
  if (!binary.includes('\x1a')) return bytes;
  const lossy =
    // eslint-disable-next-line no-control-regex
    /[\xc2-\xdf]\x1a|[\xe0-\xef](?:\x1a[\x1a\x80-\xbf]|[\x80-\xbf]\x1a)|[\xf0-\xf4](?:\x1a[\x1a\x80-\xbf]{2}|[\x80-\xbf]\x1a[\x1a\x80-\xbf]|[\x80-\xbf]{2}\x1a)|\x1a/g;
  const replaced = binary.replace(lossy, '\xef\xbf\xbd');
  return Uint8Array.from(replaced, (c) => c.charCodeAt(0));
}

/** Bytes as a string of U+0000–U+00FF, for byte-level regular expressions. */
function binaryString(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += String.fromCharCode(byte);
  return out;
}

/** ftfy's fix_c1_controls: C1 controls read as Windows-1252, as browsers do. */
function fixC1Controls(text: string): string {
  return text.replace(/[\x80-\x9f]/g, (c) => CP1252_HIGH[c.charCodeAt(0) - 0x80]);
}

// ---------------------------------------------------------------------------
// HTML character references

/**
 * ftfy's unescape_html: only complete references `&name;` / `&#…;`, plus
 * upper-cased names of lower-case entities ("&EACUTE;" → "É").
 */
function ftfyUnescapeHtml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&#?[0-9A-Za-z]{1,24};/g, (ref) => {
    if (ref.startsWith('&#')) {
      const decoded = pythonHtmlUnescape(ref);
      return decoded.includes(';') ? ref : decoded; // only when the whole reference was used
    }
    const named = decodeHTML(ref, DecodingMode.Strict);
    if (named !== ref) return named;
    const name = ref.slice(1, -1);
    const lower = name.toLowerCase();
    if (name === lower || lower.toUpperCase() !== name || pythonHtmlUnescape(ref) !== ref) return ref;
    const char = decodeHTML(`&${lower};`, DecodingMode.Strict);
    return char === `&${lower};` ? ref : char.toUpperCase();
  });
}

/** Python's html.unescape: HTML5 named references (legacy ones also without ';') and numeric ones. */
export function pythonHtmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g, (ref, body: string) =>
    body.startsWith('#') ? numericReference(body) : decodeHTML(ref, DecodingMode.Legacy),
  );
}

function numericReference(body: string): string {
  const digits = body.replace(/;$/, '');
  const hex = digits[1] === 'x' || digits[1] === 'X';
  const num = hex ? parseInt(digits.slice(2), 16) : parseInt(digits.slice(1), 10);
  if (num === 0) return '\ufffd';
  if (num === 0x0d) return '\r';
  if (num >= 0x80 && num <= 0x9f) return CP1252_HIGH[num - 0x80];
  if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
  const invalid =
    (num >= 0x01 && num <= 0x08) ||
    num === 0x0b ||
    (num >= 0x0e && num <= 0x1f) ||
    num === 0x7f ||
    (num >= 0xfdd0 && num <= 0xfdef) ||
    (num & 0xfffe) === 0xfffe;
  return invalid ? '' : String.fromCodePoint(num);
}
