/**
 * Writing a text on an image: the typographic attack's edit. The text is drawn on the model's input,
 * the S × S crop the preprocessing makes (resize of the shorter side, centre crop), so positions and
 * sizes are fractions of what the model sees and the share of pixels changed is counted there.
 *
 * Geometry, in pixels of the S × S crop: the font size is `size · S`; the text's ink box (Skia's
 * measured bounding box of the line) is centred at `(x · S, y · S)`; an optional background box is
 * the ink box grown by `padding · fontPx` on every side. The whole of it (the box, or the ink box
 * without one) must lie inside the crop, else 400. Text and box are drawn at 4× and box-averaged to
 * coverages α ∈ [0, 1]; each channel becomes `round(lerp(lerp(v, box, α_box), ink, α_text))`.
 */
import { createCanvas } from '@napi-rs/canvas';
import { badRequest } from '../errors.js';
import type { RgbImage } from '../clip/image.js';
import { normaliseRasterText } from '../clip/raster.js';
import type { Rgb } from './colour.js';
import { DEFAULT_FONT, fontFamily } from './fonts.js';

export const PASTE_LIMITS = {
  maxChars: 100,
  /** Font size as a fraction of S. */
  minSize: 0.02,
  maxSize: 1,
  supersample: 4,
} as const;

/** What a paste takes when a field is left out (also what GET /v1/typographic/options says). */
export const PASTE_DEFAULTS = { size: 0.25, x: 0.5, y: 0.5, padding: 0.2, colour: 'black' } as const;

export interface PasteOptions {
  text: string;
  font?: string;
  /** Font size as a fraction of S (default 0.25). */
  size?: number;
  /** Centre of the text, as fractions of S from the left and from the top (default 0.5, 0.5). */
  x?: number;
  y?: number;
  colour: Rgb;
  /** A background box behind the text, in this colour. */
  box?: Rgb;
  /** The box's margin around the ink, as a fraction of the font size (default 0.2). */
  padding?: number;
}

export interface Pasted {
  image: RgbImage;
  /** Pixels whose RGB changed, as a share of S². */
  changedShare: number;
  /** Where the text's ink (and box) went, in pixels of the crop. */
  inkBox: { left: number; top: number; right: number; bottom: number };
  fontPx: number;
}

/** The text as it is drawn: normalised like the rasteriser's (one line), checked for length. */
export function attackText(text: string): string {
  const normalised = normaliseRasterText(text);
  if (normalised.length === 0) throw badRequest('text is empty: write at least one visible character');
  if ([...normalised].length > PASTE_LIMITS.maxChars) {
    throw badRequest(`text has more than ${PASTE_LIMITS.maxChars} characters`);
  }
  return normalised;
}

/** The layout of a paste on an S × S crop (a 400 when the text does not fit). */
export function pasteLayout(S: number, options: PasteOptions) {
  const text = attackText(options.text);
  const family = fontFamily(options.font ?? DEFAULT_FONT);
  const size = options.size ?? PASTE_DEFAULTS.size;
  const k = PASTE_LIMITS.supersample;
  const fontPx = size * S;
  const ctx = createCanvas(1, 1).getContext('2d');
  ctx.font = `${fontPx * k}px "${family}"`;
  const m = ctx.measureText(text);
  const left0 = -m.actualBoundingBoxLeft / k;
  const width = (m.actualBoundingBoxLeft + m.actualBoundingBoxRight) / k;
  const ascent = m.actualBoundingBoxAscent / k;
  const height = (m.actualBoundingBoxAscent + m.actualBoundingBoxDescent) / k;
  if (!(width > 0 && height > 0)) throw badRequest(`text "${text.slice(0, 40)}" has no visible characters`);
  const cx = (options.x ?? PASTE_DEFAULTS.x) * S;
  const cy = (options.y ?? PASTE_DEFAULTS.y) * S;
  const ink = { left: cx - width / 2, top: cy - height / 2, right: cx + width / 2, bottom: cy + height / 2 };
  const pad = options.box ? (options.padding ?? PASTE_DEFAULTS.padding) * fontPx : 0;
  const outer = {
    left: ink.left - pad,
    top: ink.top - pad,
    right: ink.right + pad,
    bottom: ink.bottom + pad,
  };
  const eps = 1e-6;
  if (outer.left < -eps || outer.top < -eps || outer.right > S + eps || outer.bottom > S + eps) {
    throw badRequest(
      `text "${text.slice(0, 40)}" does not fit: at size ${size} (${fontPx.toFixed(1)} px) it is ` +
        `${(outer.right - outer.left).toFixed(1)} × ${(outer.bottom - outer.top).toFixed(1)} px` +
        `${options.box ? ' with its box' : ''}, centred at (${cx.toFixed(1)}, ${cy.toFixed(1)}) on the ` +
        `model's ${S} × ${S} input; make it shorter or smaller (size), or move it (x, y)`,
    );
  }
  return {
    text,
    family,
    fontPx,
    ink,
    outer,
    /** Pen position (left, baseline) that puts the ink box where it belongs. */
    pen: { x: ink.left - left0, baseline: ink.top + ascent },
  };
}

/** Writes the text on an S × S image (a copy; the input is not changed). */
export function pasteText(image: RgbImage, options: PasteOptions): Pasted {
  if (image.width !== image.height) throw new RangeError('pasteText takes the S × S crop');
  const S = image.width;
  const layout = pasteLayout(S, options);
  const k = PASTE_LIMITS.supersample;
  const big = S * k;
  const canvas = createCanvas(big, big);
  const ctx = canvas.getContext('2d');
  const coverage = (draw: () => void): Float32Array => {
    ctx.fillStyle = 'rgb(0, 0, 0)';
    ctx.fillRect(0, 0, big, big);
    ctx.fillStyle = 'rgb(255, 255, 255)';
    draw();
    return reduceRed(canvas.data(), S, k);
  };
  const out = new Uint8Array(image.data);
  if (options.box) {
    const { outer } = layout;
    const alpha = coverage(() =>
      ctx.fillRect(
        outer.left * k,
        outer.top * k,
        (outer.right - outer.left) * k,
        (outer.bottom - outer.top) * k,
      ),
    );
    blend(out, alpha, options.box);
  }
  const alpha = coverage(() => {
    ctx.font = `${layout.fontPx * k}px "${layout.family}"`;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    ctx.fillText(layout.text, layout.pen.x * k, layout.pen.baseline * k);
  });
  blend(out, alpha, options.colour);
  let changed = 0;
  for (let p = 0; p < S * S; p++) {
    const o = p * 3;
    if (out[o] !== image.data[o] || out[o + 1] !== image.data[o + 1] || out[o + 2] !== image.data[o + 2])
      changed++;
  }
  return {
    image: { width: S, height: S, data: out },
    changedShare: changed / (S * S),
    inkBox: layout.outer,
    fontPx: layout.fontPx,
  };
}

/** The red channel of RGBA at (S·k)², box-averaged to S² coverages in [0, 1]. */
function reduceRed(rgba: Uint8Array, S: number, k: number): Float32Array {
  const big = S * k;
  const alpha = new Float32Array(S * S);
  for (let y = 0; y < big; y++) {
    const row = Math.floor(y / k) * S;
    for (let x = 0; x < big; x++) alpha[row + Math.floor(x / k)] += rgba[(y * big + x) * 4];
  }
  const scale = 1 / (255 * k * k);
  for (let i = 0; i < alpha.length; i++) alpha[i] *= scale;
  return alpha;
}

function blend(data: Uint8Array, alpha: Float32Array, colour: Rgb): void {
  for (let p = 0; p < alpha.length; p++) {
    const a = alpha[p];
    if (a === 0) continue;
    for (let c = 0; c < 3; c++) data[p * 3 + c] = Math.round(data[p * 3 + c] * (1 - a) + colour[c] * a);
  }
}
