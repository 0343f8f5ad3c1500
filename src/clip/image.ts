/**
 * Image decoding and CLIP preprocessing, matching OpenAI CLIP's `_transform(n_px)`:
 *
 *   Resize(n_px, BICUBIC) → CenterCrop(n_px) → convert("RGB") → ToTensor() → Normalize(mean, std)
 *
 * on a PIL image. Resize makes the short side S and the long side `trunc(S · long / short)` with
 * Pillow's bicubic resampler (bit-exact, see ./pil-resample.ts); CenterCrop takes the S×S window at
 * `top = round((h − S) / 2)`, `left = round((w − S) / 2)` (Python rounding, half to even); ToTensor and
 * Normalize compute, in float32, `(v / 255 − mean[c]) / std[c]`.
 *
 * Decoding (sharp / libvips) follows PIL's loaders where it matters: the embedded ICC profile is
 * ignored and the EXIF orientation is not applied (PIL's `Image.open` does neither), animated images
 * give their first frame, CMYK JPEGs convert with PIL's formula. Checked byte for byte against
 * `Image.open(f).convert("RGB")` in test/image.test.ts (JPEG 4:2:0 / 4:4:4 / progressive / grey /
 * CMYK, PNG with a P3 profile, 16-bit PNG, lossy WebP, GIF). Deliberate differences from feeding PIL's raw mode to the transform:
 * transparency is flattened on white (PIL would resize premultiplied RGBa, then drop alpha), and
 * palette and CMYK images become RGB before the bicubic resize (PIL resizes "P" mode with NEAREST and
 * CMYK per ink channel, converting after the crop).
 */
import sharp from 'sharp';
import { badRequest, HttpError, payloadTooLarge, unsupportedMediaType } from '../errors.js';
import { MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS } from '../limits.js';

export interface DecodeLimits {
  /** Most width × height decoded (MAX_IMAGE_PIXELS by default). */
  maxPixels?: number;
}
import { resizeBicubic } from './pil-resample.js';

export interface RgbImage {
  width: number;
  height: number;
  /** RGB, row-major, 3 bytes per pixel. */
  data: Uint8Array;
}

export interface PreprocessSpec {
  imageSize: number;
  mean: readonly number[];
  std: readonly number[];
}

const ACCEPTED_FORMATS = new Set(['png', 'jpeg', 'webp', 'gif']);
const NOT_AN_IMAGE = 'the request body is not a decodable image (PNG, JPEG, WebP or GIF)';

/**
 * Decodes PNG / JPEG / WebP / GIF bytes to 8-bit RGB. Greyscale is replicated to RGB, palettes are
 * expanded, and alpha α is composited on white: `round((v·α + 255·(255 − α)) / 255)`.
 * Throws 400 for empty or undecodable input, 413 above MAX_IMAGE_BYTES or the pixel limit (the
 * header's width × height, before anything is decoded; sharp's limitInputPixels guards the decode
 * too, should the header understate it), 415 for a decodable image in another format (TIFF, SVG, …).
 */
export async function decodeImage(bytes: Uint8Array, limits: DecodeLimits = {}): Promise<RgbImage> {
  const maxPixels = limits.maxPixels ?? MAX_IMAGE_PIXELS;
  if (bytes.byteLength === 0) throw badRequest('the image is empty (0 bytes)');
  if (bytes.byteLength > MAX_IMAGE_BYTES) {
    throw payloadTooLarge(`the image is ${bytes.byteLength} bytes; the limit is ${MAX_IMAGE_BYTES} bytes`);
  }
  const options = { ignoreIcc: true, limitInputPixels: maxPixels, pages: 1 } as const;
  let metadata: sharp.Metadata;
  try {
    // The header alone: the pixel limit is checked below, with a clearer message than sharp's.
    metadata = await sharp(bytes, { ...options, limitInputPixels: false }).metadata();
  } catch {
    throw badRequest(NOT_AN_IMAGE);
  }
  if (!metadata.format || !ACCEPTED_FORMATS.has(metadata.format)) {
    throw unsupportedMediaType(
      `image format '${metadata.format}' is not supported; send PNG, JPEG, WebP or GIF`,
    );
  }
  const width = metadata.width ?? 0;
  const height = metadata.pageHeight ?? metadata.height ?? 0;
  if (width * height > maxPixels) {
    throw payloadTooLarge(
      `the image is ${width}×${height} = ${width * height} pixels; the limit is ${maxPixels} pixels (MAX_IMAGE_PIXELS)`,
    );
  }
  try {
    if (metadata.space === 'cmyk') return await decodeCmyk(bytes, options);
    const { data, info } = await sharp(bytes, options).raw().toBuffer({ resolveWithObject: true });
    return toRgb(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), info);
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw badRequest(`${NOT_AN_IMAGE}: ${(error as Error).message}`);
  }
}

/**
 * A CMYK JPEG, converted the way PIL's `convert("RGB")` does (no colour management): with
 * `n = 255 − K`, each of R, G, B is `n − muldiv255(C|M|Y, n)`, where
 * `muldiv255(a, b) = ((t >> 8) + t) >> 8` for `t = a·b + 128`.
 */
async function decodeCmyk(bytes: Uint8Array, options: sharp.SharpOptions): Promise<RgbImage> {
  const { data, info } = await sharp(bytes, options)
    .pipelineColourspace('cmyk')
    .toColourspace('cmyk')
    .raw()
    .toBuffer({ resolveWithObject: true });
  const n = info.width * info.height;
  if (info.channels !== 4 || data.length !== n * 4)
    throw badRequest(`${NOT_AN_IMAGE}: unexpected CMYK layout`);
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const white = 255 - data[i * 4 + 3];
    for (let c = 0; c < 3; c++) {
      const t = data[i * 4 + c] * white + 128;
      out[i * 3 + c] = white - (((t >> 8) + t) >> 8);
    }
  }
  return { width: info.width, height: info.height, data: out };
}

/** 1–4 interleaved 8-bit channels (grey, grey+alpha, RGB, RGBA) → RGB on white. */
function toRgb(src: Uint8Array, info: { width: number; height: number; channels: number }): RgbImage {
  const { width, height, channels } = info;
  const n = width * height;
  if (src.length !== n * channels) throw badRequest(`${NOT_AN_IMAGE}: unexpected pixel layout`);
  if (channels === 3) return { width, height, data: src };
  const out = new Uint8Array(n * 3);
  const hasAlpha = channels === 2 || channels === 4;
  const colourChannels = hasAlpha ? channels - 1 : channels;
  for (let i = 0, p = 0; i < n; i++, p += channels) {
    const alpha = hasAlpha ? src[p + channels - 1] : 255;
    for (let c = 0; c < 3; c++) {
      const v = src[p + (colourChannels === 1 ? 0 : c)];
      out[i * 3 + c] = alpha === 255 ? v : Math.round((v * alpha + 255 * (255 - alpha)) / 255);
    }
  }
  return { width, height, data: out };
}

/**
 * torchvision `Resize(size)` on a PIL image: the short side becomes `size`, the long side
 * `trunc(size · long / short)`; resampled with Pillow's bicubic filter (bit-exact).
 */
export function resizeShortestSide(img: RgbImage, size: number): RgbImage {
  const { width: w, height: h } = img;
  const [outW, outH] = w <= h ? [size, Math.trunc((size * h) / w)] : [Math.trunc((size * w) / h), size];
  if (outW === w && outH === h) return img;
  const out = resizeBicubic({ ...img, channels: 3 }, outW, outH);
  return { width: out.width, height: out.height, data: out.data };
}

/** Python 3's `round(x)` for x an integer or half-integer: ties to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision `CenterCrop(size)`: the window at `top = round((h − size) / 2)`,
 * `left = round((w − size) / 2)`. The image must be at least `size` on both sides.
 */
export function centerCrop(img: RgbImage, size: number): RgbImage {
  if (img.width < size || img.height < size) {
    throw new RangeError(`cannot centre-crop ${img.width}×${img.height} to ${size}×${size}`);
  }
  if (img.width === size && img.height === size) return img;
  const top = roundHalfEven((img.height - size) / 2);
  const left = roundHalfEven((img.width - size) / 2);
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const from = ((top + y) * img.width + left) * 3;
    data.set(img.data.subarray(from, from + size * 3), y * size * 3);
  }
  return { width: size, height: size, data };
}

/**
 * ToTensor + Normalize: CHW float32 `(v / 255 − mean[c]) / std[c]`, every step rounded to float32
 * as torch does (so the values equal torch's bit for bit). Writes at `out[offset…]` when given.
 */
export function toPixelValues(
  img: RgbImage,
  spec: PreprocessSpec,
  out?: Float32Array,
  offset = 0,
): Float32Array {
  const plane = img.width * img.height;
  const target = out ?? new Float32Array(3 * plane);
  if (offset + 3 * plane > target.length) throw new RangeError('pixel-value buffer too small');
  for (let c = 0; c < 3; c++) {
    const table = normalisationTable(spec.mean[c], spec.std[c]);
    const base = offset + c * plane;
    for (let i = 0; i < plane; i++) target[base + i] = table[img.data[i * 3 + c]];
  }
  return target;
}

const tableCache = new Map<string, Float32Array>();

/** The 256 float32 values `fround(fround(fround(v/255) − m) / s)` for one channel. */
function normalisationTable(mean: number, std: number): Float32Array {
  const key = `${mean}/${std}`;
  let table = tableCache.get(key);
  if (!table) {
    const m = Math.fround(mean);
    const s = Math.fround(std);
    table = new Float32Array(256);
    for (let v = 0; v < 256; v++) table[v] = Math.fround(Math.fround(v / 255) - m) / s;
    tableCache.set(key, table);
  }
  return table;
}

/** decode → resize short side to S → centre-crop S×S → normalise: the model's CHW input. */
export async function preprocessImage(
  bytes: Uint8Array,
  spec: PreprocessSpec,
  limits: DecodeLimits = {},
): Promise<Float32Array> {
  const decoded = await decodeImage(bytes, limits);
  return pixelValuesOf(decoded, spec);
}

/** The preprocessing of an already-decoded image (e.g. a rasterised word). */
export function pixelValuesOf(img: RgbImage, spec: PreprocessSpec): Float32Array {
  const size = spec.imageSize;
  return toPixelValues(centerCrop(resizeShortestSide(img, size), size), spec);
}
