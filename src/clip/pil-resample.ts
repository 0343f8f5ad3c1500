/**
 * Pillow's bicubic resampler (`Image.resize(size, Image.BICUBIC)`, Pillow ≥ 7, 8-bit images),
 * reproduced bit for bit. OpenAI's CLIP preprocessing resizes PIL images with it, so the service
 * must produce the same bytes to feed the model the same pixels.
 *
 * The math (libImaging/Resample.c):
 *
 *   - The resize is separable: a horizontal pass (only over the source rows the vertical pass will
 *     read), then a vertical pass; a pass is skipped when that dimension is unchanged. Each pass
 *     rounds and clips back to 8 bits.
 *   - For one axis of `inSize → outSize`: `scale = inSize / outSize`, `filterscale = max(scale, 1)`
 *     (the kernel is stretched when downscaling: antialiasing), `support = 2 · filterscale`.
 *     Output pixel `i` is centred at `c = (i + 0.5) · scale` in source coordinates and reads the
 *     source pixels `xmin = trunc(c − support + 0.5)` (clamped to ≥ 0) up to, not including,
 *     `xmax = trunc(c + support + 0.5)` (clamped to ≤ inSize); source pixel `x` gets the weight
 *     `k((x − c + 0.5) / filterscale)`, and the weights of one output pixel are normalised to sum 1.
 *   - `k` is the cubic convolution kernel with a = −0.5 (Keys):
 *     `k(t) = (a+2)|t|³ − (a+3)|t|² + 1` for |t| < 1, `a(|t|³ − 5|t|² + 8|t| − 4)` for 1 ≤ |t| < 2, else 0.
 *   - Weights become fixed point with PRECISION_BITS = 32 − 8 − 2 = 22 fractional bits, rounded half
 *     away from zero; a channel value is `clip8((2^21 + Σ src · w) >> 22)`.
 *
 * All kernel math is IEEE double, as in C (x86-64 without FMA contraction), so the weights match exactly.
 * Accumulators stay in int32 like Pillow's: every partial sum lies within
 * 2^21 + 255 · (Σ positive weights ≈ 1.2) · 2^22 < 2^31 (and above −2^31), so `| 0` never wraps.
 */

/** Interleaved 8-bit pixels: `channels` bytes per pixel, row-major. */
export interface Raster8 {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

const PRECISION_BITS = 32 - 8 - 2;
const ROUNDING_HALF = 1 << (PRECISION_BITS - 1);
const CLIP_OVER = 1 << (PRECISION_BITS + 8);
const BICUBIC_SUPPORT = 2;
const BICUBIC_A = -0.5;

/** Keys' cubic convolution kernel with a = −0.5, in Pillow's evaluation order. */
function bicubicKernel(t: number): number {
  const x = t < 0 ? -t : t;
  if (x < 1) return ((BICUBIC_A + 2) * x - (BICUBIC_A + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * BICUBIC_A;
  return 0;
}

/** Per-output-pixel source windows and fixed-point weights for one axis. */
interface AxisCoefficients {
  /** Weights per output pixel (stride `taps`), 22-bit fixed point. */
  weights: Int32Array;
  /** First source index read by each output pixel. */
  first: Int32Array;
  /** Number of source pixels read by each output pixel. */
  count: Int32Array;
  taps: number;
}

/** Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the box [0, inSize). */
export function bicubicCoefficients(inSize: number, outSize: number): AxisCoefficients {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = BICUBIC_SUPPORT * filterscale;
  const taps = Math.ceil(support) * 2 + 1;
  const inverseFilterscale = 1 / filterscale;
  const weights = new Int32Array(outSize * taps);
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const real = new Float64Array(taps);
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(centre - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(centre + support + 0.5)) - xmin;
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubicKernel((x + xmin - centre + 0.5) * inverseFilterscale);
      real[x] = w;
      sum += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = sum !== 0 ? real[x] / sum : real[x];
      const fixed = w < 0 ? -0.5 + w * (1 << PRECISION_BITS) : 0.5 + w * (1 << PRECISION_BITS);
      weights[i * taps + x] = Math.trunc(fixed);
    }
    first[i] = xmin;
    count[i] = xmax;
  }
  return { weights, first, count, taps };
}

/** Pillow's `clip8`: fixed-point accumulator → byte. */
function clip8(acc: number): number {
  if (acc >= CLIP_OVER) return 255;
  if (acc <= 0) return 0;
  return acc >> PRECISION_BITS;
}

/** Horizontal pass over source rows [rowStart, rowStart + rows). */
function resampleHorizontal(src: Raster8, outWidth: number, rowStart: number, rows: number): Raster8 {
  const { weights, first, count, taps } = bicubicCoefficients(src.width, outWidth);
  const ch = src.channels;
  const out = new Uint8Array(outWidth * rows * ch);
  const inData = src.data;
  const acc = new Float64Array(ch);
  for (let y = 0; y < rows; y++) {
    const rowIn = (y + rowStart) * src.width * ch;
    let o = y * outWidth * ch;
    for (let xx = 0; xx < outWidth; xx++) {
      const k0 = xx * taps;
      const n = count[xx];
      let p = rowIn + first[xx] * ch;
      acc.fill(ROUNDING_HALF);
      for (let t = 0; t < n; t++, p += ch) {
        const w = weights[k0 + t];
        for (let c = 0; c < ch; c++) acc[c] += inData[p + c] * w;
      }
      for (let c = 0; c < ch; c++) out[o++] = clip8(acc[c]);
    }
  }
  return { width: outWidth, height: rows, channels: ch, data: out };
}

/** Horizontal pass, unrolled for 3 channels (the hot path: RGB images). */
function resampleHorizontalRgb(src: Raster8, outWidth: number, rowStart: number, rows: number): Raster8 {
  const { weights, first, count, taps } = bicubicCoefficients(src.width, outWidth);
  const out = new Uint8Array(outWidth * rows * 3);
  const inData = src.data;
  for (let y = 0; y < rows; y++) {
    const rowIn = (y + rowStart) * src.width * 3;
    let o = y * outWidth * 3;
    for (let xx = 0; xx < outWidth; xx++) {
      const k0 = xx * taps;
      const n = count[xx];
      let p = rowIn + first[xx] * 3;
      let r = ROUNDING_HALF;
      let g = ROUNDING_HALF;
      let b = ROUNDING_HALF;
      for (let t = 0; t < n; t++, p += 3) {
        const w = weights[k0 + t];
        r = (r + inData[p] * w) | 0;
        g = (g + inData[p + 1] * w) | 0;
        b = (b + inData[p + 2] * w) | 0;
      }
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
      o += 3;
    }
  }
  return { width: outWidth, height: rows, channels: 3, data: out };
}

/**
 * Vertical pass; `coefficients.first` is relative to the first row of `src`. Accumulates whole rows
 * (sequential memory access); the sums are exact integers, so the order does not change the result.
 */
function resampleVertical(src: Raster8, outHeight: number, coefficients: AxisCoefficients): Raster8 {
  const { weights, first, count, taps } = coefficients;
  const rowLength = src.width * src.channels;
  const out = new Uint8Array(outHeight * rowLength);
  const inData = src.data;
  const acc = new Int32Array(rowLength);
  for (let yy = 0; yy < outHeight; yy++) {
    acc.fill(ROUNDING_HALF);
    for (let t = 0, n = count[yy]; t < n; t++) {
      const w = weights[yy * taps + t];
      const row = (first[yy] + t) * rowLength;
      for (let i = 0; i < rowLength; i++) acc[i] = (acc[i] + inData[row + i] * w) | 0;
    }
    const o = yy * rowLength;
    for (let i = 0; i < rowLength; i++) out[o + i] = clip8(acc[i]);
  }
  return { width: src.width, height: outHeight, channels: src.channels, data: out };
}

/**
 * `PIL.Image.resize((outWidth, outHeight), Image.BICUBIC)` for an 8-bit image (any channel count,
 * channels resampled independently, as for PIL's L / RGB modes).
 */
export function resizeBicubic(src: Raster8, outWidth: number, outHeight: number): Raster8 {
  if (!(Number.isInteger(outWidth) && Number.isInteger(outHeight) && outWidth > 0 && outHeight > 0)) {
    throw new RangeError(`resize target must be positive integers, got ${outWidth}×${outHeight}`);
  }
  const needHorizontal = outWidth !== src.width;
  const needVertical = outHeight !== src.height;
  if (!needHorizontal && !needVertical) return { ...src, data: src.data.slice() };

  const vertical = bicubicCoefficients(src.height, outHeight);
  let image = src;
  if (needHorizontal) {
    // Only the source rows the vertical pass reads: [first of row 0, end of the last row).
    const rowStart = vertical.first[0];
    const rowEnd = vertical.first[outHeight - 1] + vertical.count[outHeight - 1];
    const rows = needVertical ? rowEnd - rowStart : src.height;
    const start = needVertical ? rowStart : 0;
    image =
      src.channels === 3
        ? resampleHorizontalRgb(src, outWidth, start, rows)
        : resampleHorizontal(src, outWidth, start, rows);
    if (needVertical) for (let i = 0; i < outHeight; i++) vertical.first[i] -= rowStart;
  }
  return needVertical ? resampleVertical(image, outHeight, vertical) : image;
}
