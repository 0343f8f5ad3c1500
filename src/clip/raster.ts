/**
 * The word rasteriser: draws a word or phrase as the picture the model reads — black DejaVu Sans on
 * white, as large as fits, centred. tools/raster/raster.py implements the same rule with Pillow (the
 * toy model's training data draws words with it), so the rule is computed from the font file's own
 * tables (read by font-metrics.ts), in integers where it decides anything, never from a rasteriser's
 * measurements:
 *
 * 1. Text: NFC; whitespace (JavaScript's `\s` set, listed in WHITESPACE) becomes spaces; the other
 *    C0/C1 controls are dropped; runs of spaces become one; leading/trailing spaces are trimmed.
 *    Empty → 400. A code point the font's cmap lacks becomes U+FFFD. More than `maxChars` code
 *    points → 400.
 * 2. Font units (unitsPerEm = 2048 for DejaVu Sans): glyph j of a line has its pen at
 *    `p_j = Σ_{i<j} advance_i` (hmtx; no kerning, no shaping). The line's ink box is the union of the
 *    glyphs' `glyf` boxes moved by p_j: left, right, top (max yMax), bottom (min yMin). A line with
 *    no ink has the box 0,0,0,0; a text with no ink at all → 400.
 * 3. Candidate layouts: the words (split at spaces) in 1 … `maxLines` lines, every way to break
 *    them, in order: fewer lines first, then break positions in lexicographic order. For a layout,
 *    `W = max_i (right_i − left_i)`, `H = top_1 + (k − 1) · pitch − bottom_k` with
 *    `pitch = ascender − descender + lineGap` (hhea), margin `m = floor(S · marginFraction + 0.5)`,
 *    `A = S − 2m`, and the font size (px, integer)
 *    `f = min(floor(A · unitsPerEm / W), floor(A · unitsPerEm / H), floor(S · maxFontFraction))`.
 * 4. The layout with the largest f wins; ties go to fewer lines, then to the smaller W, then to the
 *    earlier one. f < `minFontPx` → 400 (too long to draw legibly at S).
 * 5. Placement, with `s = f / unitsPerEm`, pixels from the top-left: the first baseline is at
 *    `y_1 = (S − H·s) / 2 + top_1·s`, the next ones `pitch·s` apart; line i's pen starts at
 *    `x_i = (S − (right_i − left_i)·s) / 2 − left_i·s`, and glyph j is drawn alone at
 *    `(x_i + p_j·s, y_i)` (fractional positions; left/baseline anchor) at f px — in practice at
 *    `supersample`× that scale, then box-averaged down to S.
 *
 * Pixels then depend on the rasteriser (Skia here, FreeType in Pillow): antialiasing and hinting
 * differ by a little, the layout not at all. Same input → same bytes on the same build.
 */
import { GlobalFonts, createCanvas } from '@napi-rs/canvas';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import sharp from 'sharp';

import { badRequest } from '../errors.js';
import { readFontMetrics, type FontMetrics } from './font-metrics.js';
import type { RgbImage } from './image.js';

export const RASTER_LAYOUT = {
  /** In dejavu-fonts-ttf/ttf/. */
  fontFile: 'DejaVuSans.ttf',
  /** Margin on every side, as a fraction of S (rounded to whole pixels). */
  marginFraction: 0.08,
  maxLines: 3,
  /** Cap on the font size (px) as a fraction of S, so one short word is not a wall of ink. */
  maxFontFraction: 0.5,
  /** Below this font size (px) the text is refused as too long for the picture. */
  minFontPx: 4,
  /** Longest text accepted, in code points after normalisation. */
  maxChars: 100,
  /** Drawn at this multiple of S, then box-averaged down (see rasterizeText). */
  supersample: 4,
  /** Drawn for characters the font lacks. */
  replacementChar: '\uFFFD',
  ink: [0, 0, 0],
  paper: [255, 255, 255],
} as const;

/** JavaScript's `\s`, written out so Python can use the identical set. */
const WHITESPACE = /[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]/g;
/** General category Cc: U+0000–U+001F and U+007F–U+009F. */
const CONTROLS = /\p{Cc}/gu;
const FAMILY = 'multimodal-neurons DejaVu Sans';

let font: { path: string; metrics: FontMetrics } | undefined;

/** Loads the bundled TTF once: its metrics for the layout, and into Skia under a private family name. */
function loadFont() {
  if (!font) {
    const require = createRequire(import.meta.url);
    const packageDir = path.dirname(require.resolve('dejavu-fonts-ttf/package.json'));
    const fontPath = path.join(packageDir, 'ttf', RASTER_LAYOUT.fontFile);
    if (!GlobalFonts.registerFromPath(fontPath, FAMILY)) throw new Error(`cannot load ${fontPath}`);
    font = { path: fontPath, metrics: readFontMetrics(readFileSync(fontPath)) };
  }
  return font;
}

/** Step 1: the normalised text. */
export function normaliseRasterText(text: string): string {
  return text.normalize('NFC').replace(WHITESPACE, ' ').replace(CONTROLS, '').replace(/ +/g, ' ').trim();
}

/** Ink box in font units (y up), relative to a pen origin; `undefined` sides when there is no ink. */
interface Ink {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

interface Run extends Ink {
  chars: string[];
  pens: number[];
  /** Pen position after the last glyph. */
  advance: number;
}

const NO_INK: Ink = { left: Infinity, right: -Infinity, top: -Infinity, bottom: Infinity };

/** Step 2: pens and ink box of a run of glyphs, in font units. */
function measureRun(chars: string[], metrics: FontMetrics): Run {
  const pens: number[] = [];
  const ink = { ...NO_INK };
  let pen = 0;
  for (const ch of chars) {
    const glyph = metrics.glyph(ch.codePointAt(0) ?? 0);
    if (!glyph) throw new Error(`no glyph for ${ch}`);
    pens.push(pen);
    if (glyph.box) addInk(ink, glyph.box[0], glyph.box[1], glyph.box[2], glyph.box[3], pen);
    pen += glyph.advance;
  }
  return { chars, pens, advance: pen, ...ink };
}

function addInk(ink: Ink, left: number, bottom: number, right: number, top: number, shift: number) {
  ink.left = Math.min(ink.left, shift + left);
  ink.right = Math.max(ink.right, shift + right);
  ink.top = Math.max(ink.top, top);
  ink.bottom = Math.min(ink.bottom, bottom);
}

/**
 * The ink box of words[from, to) joined by spaces, from the words' own runs (the same integers as
 * measuring the joined line glyph by glyph; a line without ink gets the box 0, 0, 0, 0).
 */
function lineInk(words: Run[], space: Run, from: number, to: number): Ink {
  const ink = { ...NO_INK };
  let pen = 0;
  for (let i = from; i < to; i++) {
    if (i > from) {
      if (space.left !== Infinity) addInk(ink, space.left, space.bottom, space.right, space.top, pen);
      pen += space.advance;
    }
    const w = words[i];
    if (w.left !== Infinity) addInk(ink, w.left, w.bottom, w.right, w.top, pen);
    pen += w.advance;
  }
  return ink.left === Infinity ? { left: 0, right: 0, top: 0, bottom: 0 } : ink;
}

/** Every way to put `n` words on 1 … maxLines lines, as break indices, in the documented order. */
function lineBreaks(n: number, maxLines: number): number[][] {
  const out: number[][] = [];
  const extend = (breaks: number[], remaining: number) => {
    if (remaining === 0) return void out.push(breaks);
    for (let b = (breaks.at(-1) ?? 0) + 1; b < n; b++) extend([...breaks, b], remaining - 1);
  };
  for (let lines = 1; lines <= Math.min(maxLines, n); lines++) extend([], lines - 1);
  return out;
}

export interface RasterLayout {
  fontPx: number;
  lines: { text: string; x: number; baseline: number; pens: number[] }[];
}

/** Steps 1–5: the font size and where every glyph goes, for a picture of S × S. */
export function layoutText(text: string, size: number): RasterLayout {
  const { metrics } = loadFont();
  const normalised = normaliseRasterText(text);
  if (normalised.length === 0) throw badRequest('the text to rasterise is empty');
  const chars = [...normalised].map((ch) =>
    metrics.glyph(ch.codePointAt(0) ?? 0) ? ch : RASTER_LAYOUT.replacementChar,
  );
  if (chars.length > RASTER_LAYOUT.maxChars) {
    throw badRequest(
      `the text to rasterise has ${chars.length} characters; the limit is ${RASTER_LAYOUT.maxChars}`,
    );
  }
  const words = chars
    .join('')
    .split(' ')
    .map((word) => measureRun([...word], metrics));
  const space = measureRun([' '], metrics);
  const margin = Math.floor(size * RASTER_LAYOUT.marginFraction + 0.5);
  const avail = size - 2 * margin;
  const cap = Math.floor(size * RASTER_LAYOUT.maxFontFraction);
  const em = metrics.unitsPerEm;

  let best: { fontPx: number; width: number; height: number; bounds: number[] } | undefined;
  for (const breaks of lineBreaks(words.length, RASTER_LAYOUT.maxLines)) {
    const bounds = [0, ...breaks, words.length];
    const lines = bounds.slice(1).map((end, i) => lineInk(words, space, bounds[i], end));
    const width = Math.max(...lines.map((l) => l.right - l.left));
    const height = lines[0].top + (lines.length - 1) * metrics.pitch - lines[lines.length - 1].bottom;
    if (width <= 0 || height <= 0) continue;
    const fontPx = Math.min(Math.floor((avail * em) / width), Math.floor((avail * em) / height), cap);
    const better =
      !best ||
      fontPx > best.fontPx ||
      (fontPx === best.fontPx && bounds.length === best.bounds.length && width < best.width);
    if (better) best = { fontPx, width, height, bounds };
  }
  if (!best) throw badRequest('the text to rasterise has no visible characters');
  if (best.fontPx < RASTER_LAYOUT.minFontPx) {
    throw badRequest(`the text is too long to rasterise legibly at ${size}×${size} pixels`);
  }
  const { bounds } = best;
  const lines = bounds.slice(1).map((end, i) => {
    const run = measureRun(
      [
        ...words
          .slice(bounds[i], end)
          .map((w) => w.chars.join(''))
          .join(' '),
      ],
      metrics,
    );
    return { ...run, ...lineInk(words, space, bounds[i], end) };
  });
  const s = best.fontPx / em;
  const firstBaseline = (size - best.height * s) / 2 + lines[0].top * s;
  return {
    fontPx: best.fontPx,
    lines: lines.map((line, i) => ({
      text: line.chars.join(''),
      x: (size - (line.right - line.left) * s) / 2 - line.left * s,
      baseline: firstBaseline + i * metrics.pitch * s,
      pens: line.pens.map((p) => p * s),
    })),
  };
}

/**
 * The text drawn per the layout rule above: an S×S RGB picture, black (or `ink`) on white. Drawn at
 * `supersample`× (font and positions scaled by the factor) and box-averaged back to S with
 * `(Σ + n/2) >> log2(n)` rounding (Pillow's `Image.reduce`), so antialiasing is area coverage in both
 * implementations rather than each rasteriser's own small-size hinting and gamma.
 */
export function rasterizeText(
  text: string,
  size: number,
  ink: readonly [number, number, number] = RASTER_LAYOUT.ink,
): RgbImage {
  if (!Number.isInteger(size) || size < 8 || size > 2048) throw badRequest(`bad raster size ${size}`);
  const layout = layoutText(text, size);
  const k = RASTER_LAYOUT.supersample;
  const big = size * k;
  const canvas = createCanvas(big, big);
  const ctx = canvas.getContext('2d');
  const [pr, pg, pb] = RASTER_LAYOUT.paper;
  const [ir, ig, ib] = ink;
  ctx.fillStyle = `rgb(${pr}, ${pg}, ${pb})`;
  ctx.fillRect(0, 0, big, big);
  ctx.fillStyle = `rgb(${ir}, ${ig}, ${ib})`;
  ctx.font = `${layout.fontPx * k}px "${FAMILY}"`;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  for (const line of layout.lines) {
    [...line.text].forEach((ch, j) => {
      if (ch !== ' ') ctx.fillText(ch, (line.x + line.pens[j]) * k, line.baseline * k);
    });
  }
  // canvas.data(): the surface's RGBA bytes without getImageData's copy (opaque, so unpremultiplied).
  return boxReduce(canvas.data(), size, k);
}

/** RGBA at (size·k)² → RGB at size², each output the rounded mean of its k×k block. */
function boxReduce(rgba: Uint8Array, size: number, k: number): RgbImage {
  const big = size * k;
  const n = k * k;
  const data = new Uint8Array(size * size * 3);
  const sums = new Uint32Array(size * 3);
  for (let y = 0; y < size; y++) {
    sums.fill(0);
    for (let p = y * k * big * 4, end = p + k * big * 4, x = 0; p < end; p += 4, x = (x + 1) % big) {
      const o = Math.floor(x / k) * 3;
      sums[o] += rgba[p];
      sums[o + 1] += rgba[p + 1];
      sums[o + 2] += rgba[p + 2];
    }
    for (let i = 0; i < size * 3; i++) data[y * size * 3 + i] = Math.floor((sums[i] + n / 2) / n);
  }
  return { width: size, height: size, data };
}

/** The raster as a PNG (deterministic encoder settings). */
export async function rasterizePng(
  text: string,
  size: number,
  ink: readonly [number, number, number] = RASTER_LAYOUT.ink,
): Promise<Buffer> {
  const { width, height, data } = rasterizeText(text, size, ink);
  return sharp(data, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 9, adaptiveFiltering: false })
    .toBuffer();
}
