/**
 * Image decoding and CLIP preprocessing against Debian's Pillow and torch (run through
 * test/fixtures/images/pil_reference.py with /usr/bin/python3 at test time), against the shared
 * outputs of OpenAI's pipeline (../shared/clip/reference-small), and the decoder's contract.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';

import { HttpError } from '../src/errors.js';
import { MAX_IMAGE_BYTES } from '../src/limits.js';
import {
  centerCrop,
  decodeImage,
  preprocessImage,
  resizeShortestSide,
  toPixelValues,
  type RgbImage,
} from '../src/clip/image.js';
import { resizeBicubic } from '../src/clip/pil-resample.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = '/usr/bin/python3';
const PIL_REFERENCE = path.resolve(repoRoot, 'test/fixtures/images/pil_reference.py');
const SHARED = path.resolve(repoRoot, '../shared/clip/reference-small');
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/** Deterministic pseudo-random bytes (LCG) so failures reproduce. */
function randomSource(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state >>> 8;
  };
}

/** Random, smooth and black/white pictures: noise, gradients and hard edges all stress the rounding. */
function picture(width: number, height: number, channels: number, seed: number): Uint8Array {
  const next = randomSource(seed);
  const data = new Uint8Array(width * height * channels);
  const kind = seed % 3;
  for (let i = 0; i < data.length; i++) {
    if (kind === 0) data[i] = next() & 255;
    else if (kind === 1) data[i] = Math.floor(127.5 + 127.5 * Math.sin(i / 29 + (next() & 3)));
    else data[i] = next() & 1 ? 255 : 0;
  }
  return data;
}

function hasPython(): boolean {
  try {
    execFileSync(PYTHON, ['-c', 'import PIL, numpy, torch'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function rejects(t: Test, promise: Promise<unknown>, status: number, pattern: RegExp) {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(error instanceof HttpError, 'throws an HttpError');
  t.equal((error as HttpError).statusCode, status);
  t.match((error as Error).message, pattern);
}

t.test('Pillow parity: the bicubic resize is byte-exact', { skip: !hasPython() && 'no PIL' }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pil-resize-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const next = randomSource(2024);
  const sizes: [number, number, number, number][] = [
    [1, 1, 7, 5],
    [5, 7, 1, 1],
    [100, 80, 100, 41], // vertical pass only
    [80, 100, 33, 100], // horizontal pass only
    [1000, 800, 360, 288], // the 288 px model's downscale
    [223, 301, 224, 302], // barely upscaling
    [640, 480, 298, 224],
  ];
  for (let i = 0; i < 60; i++) {
    sizes.push([1 + (next() % 150), 1 + (next() % 150), 1 + (next() % 160), 1 + (next() % 160)]);
  }
  const cases = sizes.map(([width, height, outWidth, outHeight], i) => {
    const mode = i % 4 === 3 ? 'L' : 'RGB';
    const channels = mode === 'L' ? 1 : 3;
    const data = picture(width, height, channels, i);
    writeFileSync(path.join(dir, `c${i}.in`), data);
    return { name: `c${i}`, mode, width, height, out_width: outWidth, out_height: outHeight, data, channels };
  });
  writeFileSync(path.join(dir, 'cases.json'), JSON.stringify(cases.map(({ data: _d, ...c }) => c)));
  execFileSync(PYTHON, [PIL_REFERENCE, dir]);
  let exact = 0;
  for (const c of cases) {
    const expected = readFileSync(path.join(dir, `${c.name}.out`));
    const got = resizeBicubic(c, c.out_width, c.out_height);
    const same = Buffer.from(got.data).equals(expected);
    if (!same) t.fail(`${c.mode} ${c.width}×${c.height} → ${c.out_width}×${c.out_height} differs from PIL`);
    exact += same ? 1 : 0;
  }
  t.equal(exact, cases.length, `${exact}/${cases.length} resizes equal PIL's bytes`);
});

t.test(
  'OpenAI _transform parity (PIL + torch): pixel values are bit-exact',
  { skip: !hasPython() && 'no PIL' },
  async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'clip-transform-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const files: { name: string; size: number; bytes: Buffer }[] = [];
    const shapes: [number, number, number][] = [
      [97, 131, 64],
      [300, 200, 224],
      [64, 64, 64], // no resize, no crop
      [67, 300, 64], // crop offset 1.5 → 2 (half to even)
      [69, 64, 64], // crop offset 2.5 → 2
      [500, 375, 288],
    ];
    for (const [i, [width, height, size]] of shapes.entries()) {
      const raw = sharp(picture(width, height, 3, i), { raw: { width, height, channels: 3 } });
      const png = await raw.clone().png().toBuffer();
      files.push({ name: `s${i}.png`, size, bytes: png });
    }
    const jpeg = await sharp(picture(120, 90, 3, 1), { raw: { width: 120, height: 90, channels: 3 } })
      .jpeg({ quality: 85 })
      .toBuffer();
    files.push({ name: 'j.jpg', size: 64, bytes: jpeg });
    for (const size of [64, 224, 288]) {
      const group = files.filter((f) => f.size === size);
      const sub = path.join(dir, String(size));
      execFileSync('mkdir', ['-p', sub]);
      for (const f of group) writeFileSync(path.join(sub, f.name), f.bytes);
      const spec = { files: group.map((f) => f.name), size, mean: CLIP_MEAN, std: CLIP_STD };
      writeFileSync(path.join(sub, 'clip.json'), JSON.stringify(spec));
      execFileSync(PYTHON, [PIL_REFERENCE, sub]);
      for (const f of group) {
        const expected = readFileSync(path.join(sub, `${f.name}.f32`));
        const got = await preprocessImage(f.bytes, { imageSize: size, mean: CLIP_MEAN, std: CLIP_STD });
        t.ok(
          Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(expected),
          `${f.name} at ${size}`,
        );
      }
    }
  },
);

interface ReferenceImage {
  png: string;
  input_channel_mean: number[];
  input_first_pixels_c0?: number[];
}

t.test(
  'decoding matches PIL: Image.open(f).convert("RGB")',
  { skip: !hasPython() && 'no PIL' },
  async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pil-decode-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const [width, height] = [37, 23];
    const base = () => sharp(picture(width, height, 3, 1), { raw: { width, height, channels: 3 } });
    const variants: Record<string, Promise<Buffer>> = {
      'jpeg-420.jpg': base().jpeg({ quality: 80 }).toBuffer(),
      'jpeg-444.jpg': base().jpeg({ quality: 80, chromaSubsampling: '4:4:4' }).toBuffer(),
      'progressive.jpg': base().jpeg({ quality: 80, progressive: true }).toBuffer(),
      'grey.jpg': base().greyscale().jpeg().toBuffer(),
      'cmyk.jpg': base().toColourspace('cmyk').jpeg({ quality: 90 }).toBuffer(),
      'p3-profile.png': base().withIccProfile('p3').png().toBuffer(),
      'p3-profile.jpg': base().withIccProfile('p3').jpeg().toBuffer(),
      'rgb16.png': base().toColourspace('rgb16').png().toBuffer(),
      'lossy.webp': base().webp({ quality: 80 }).toBuffer(),
      'palette.gif': base().gif().toBuffer(),
    };
    for (const [name, bytes] of Object.entries(variants)) writeFileSync(path.join(dir, name), await bytes);
    writeFileSync(path.join(dir, 'decode.json'), JSON.stringify(Object.keys(variants)));
    execFileSync(PYTHON, [PIL_REFERENCE, dir]);
    for (const name of Object.keys(variants)) {
      const ours = await decodeImage(readFileSync(path.join(dir, name)));
      t.ok(
        Buffer.from(ours.data).equals(readFileSync(path.join(dir, `${name}.rgb`))),
        `${name}: same bytes as PIL`,
      );
    }
  },
);

t.test('shared reference: OpenAI CLIP preprocessing of the reference pictures', async (t) => {
  const expected = JSON.parse(readFileSync(path.join(SHARED, 'expected.json'), 'utf8')) as {
    images: ReferenceImage[];
    extra_resize_case: ReferenceImage;
  };
  const spec = { imageSize: 64, mean: CLIP_MEAN, std: CLIP_STD };
  // The reference prints 6 significant digits: allow half a unit in the last printed place.
  const close = (got: number, want: number, what: string) =>
    t.ok(Math.abs(got - want) <= 5e-6 * Math.max(1, Math.abs(want)), `${what}: ${got} vs ${want}`);
  const channelMeans = (x: Float32Array) =>
    [0, 1, 2].map((c) => x.subarray(c * 4096, (c + 1) * 4096).reduce((a, b) => a + b, 0) / 4096);
  for (const image of [...expected.images, expected.extra_resize_case]) {
    const values = await preprocessImage(readFileSync(path.join(SHARED, image.png)), spec);
    t.equal(values.length, 3 * 64 * 64);
    channelMeans(values).forEach((m, c) => close(m, image.input_channel_mean[c], `${image.png} mean c${c}`));
    if (image.input_first_pixels_c0) {
      image.input_first_pixels_c0.forEach((v, i) => close(values[i], v, `${image.png} pixel ${i}`));
    }
  }
});

t.test('resizeShortestSide and centerCrop follow torchvision', async (t) => {
  const img: RgbImage = { width: 1000, height: 800, data: picture(1000, 800, 3, 5) };
  const resized = resizeShortestSide(img, 288);
  t.same([resized.width, resized.height], [360, 288]);
  t.same(
    [resizeShortestSide({ width: 7, height: 3, data: picture(7, 3, 3, 1) }, 2).width],
    [4],
    'long side truncates: 2 · 7 / 3 = 4.67 → 4',
  );
  t.equal(resizeShortestSide(resized, 288), resized, 'already S on the short side: unchanged');
  const row = (w: number) => ({
    width: w,
    height: 1,
    data: Uint8Array.from({ length: w * 3 }, (_, i) => i / 3),
  });
  t.equal(centerCrop(row(4), 1).data[0], 2, '(4 − 1) / 2 = 1.5 → 2');
  t.equal(centerCrop(row(6), 1).data[0], 2, '(6 − 1) / 2 = 2.5 → 2');
  t.equal(centerCrop(row(8), 1).data[0], 4, '(8 − 1) / 2 = 3.5 → 4');
  t.throws(() => centerCrop(row(3), 2));
});

t.test('toPixelValues: CHW float32, written at an offset when asked', async (t) => {
  const img: RgbImage = { width: 2, height: 1, data: Uint8Array.from([0, 128, 255, 255, 0, 10]) };
  const spec = { imageSize: 2, mean: CLIP_MEAN, std: CLIP_STD };
  const values = toPixelValues(img, spec);
  const expect = (v: number, c: number) =>
    Math.fround(Math.fround(v / 255) - Math.fround(CLIP_MEAN[c])) / Math.fround(CLIP_STD[c]);
  t.same(
    Array.from(values),
    [expect(0, 0), expect(255, 0), expect(128, 1), expect(0, 1), expect(255, 2), expect(10, 2)].map(
      Math.fround,
    ),
  );
  const batch = new Float32Array(20);
  toPixelValues(img, spec, batch, 8);
  t.same(Array.from(batch.subarray(8, 14)), Array.from(values));
  t.equal(batch[7], 0);
  t.throws(() => toPixelValues(img, spec, new Float32Array(5)));
});

t.test('decodeImage: PNG, JPEG, WebP, GIF, alpha, greyscale, palette', async (t) => {
  const raw = (w: number, h: number, channels: 1 | 2 | 3 | 4, data: number[]) =>
    sharp(Uint8Array.from(data), { raw: { width: w, height: h, channels } });
  const rgb = [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 10, 200, 30];
  const png = await decodeImage(await raw(3, 2, 3, rgb).png().toBuffer());
  t.same([png.width, png.height, Array.from(png.data)], [3, 2, rgb], 'PNG is lossless');
  const webp = await decodeImage(await raw(3, 2, 3, rgb).webp({ lossless: true }).toBuffer());
  t.same(Array.from(webp.data), rgb, 'lossless WebP');
  const jpeg = await decodeImage(await raw(3, 2, 3, rgb).jpeg({ quality: 100 }).toBuffer());
  t.same([jpeg.width, jpeg.height, jpeg.data.length], [3, 2, 18], 'JPEG decodes to RGB');
  const gif = await decodeImage(await raw(3, 2, 3, rgb).gif().toBuffer());
  t.same([gif.width, gif.height, gif.data.length], [3, 2, 18], 'GIF decodes to RGB');
  t.same(Array.from(gif.data.subarray(0, 3)), [255, 0, 0], 'GIF palette colour');

  const rgba = [255, 0, 0, 0, 0, 0, 255, 128, 10, 20, 30, 255];
  const flat = await decodeImage(await raw(3, 1, 4, rgba).png().toBuffer());
  const onWhite = (v: number, a: number) => Math.round((v * a + 255 * (255 - a)) / 255);
  t.same(
    Array.from(flat.data),
    [255, 255, 255, onWhite(0, 128), onWhite(0, 128), onWhite(255, 128), 10, 20, 30],
    'alpha on white',
  );

  const grey = await decodeImage(await raw(2, 1, 1, [7, 200]).png().toBuffer());
  t.same(Array.from(grey.data), [7, 7, 7, 200, 200, 200], 'greyscale → RGB');
  const greyAlpha = await decodeImage(await raw(2, 1, 2, [0, 0, 0, 255]).png().toBuffer());
  t.same(Array.from(greyAlpha.data), [255, 255, 255, 0, 0, 0], 'grey + alpha on white');
  const palette = [
    [255, 0, 0],
    [0, 255, 0],
    [10, 200, 30],
  ];
  const indexed = await decodeImage(indexedPng(3, 1, palette, [2, 0, 1], [255, 0]));
  t.same(Array.from(indexed.data), [10, 200, 30, 255, 0, 0, 255, 255, 255], 'palette PNG (with tRNS) → RGB');

  const rotated = await raw(3, 2, 3, rgb).jpeg().withMetadata({ orientation: 6 }).toBuffer();
  const unrotated = await decodeImage(rotated);
  t.same([unrotated.width, unrotated.height], [3, 2], 'EXIF orientation is not applied (as PIL)');

  const frames = [raw(2, 2, 3, Array(12).fill(0)), raw(2, 2, 3, Array(12).fill(255))];
  const animated = await sharp(await Promise.all(frames.map((f) => f.png().toBuffer())), {
    join: { animated: true },
  })
    .gif()
    .toBuffer();
  const first = await decodeImage(animated);
  t.same([first.width, first.height, first.data[0]], [2, 2, 0], 'animated GIF: first frame');
});

t.test('decodeImage: errors carry HTTP statuses', async (t) => {
  await rejects(t, decodeImage(new Uint8Array(0)), 400, /empty/);
  await rejects(t, decodeImage(Buffer.from('definitely not a picture')), 400, /not a decodable image/);
  const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#808080' } })
    .png()
    .toBuffer();
  await rejects(t, decodeImage(png.subarray(0, 40)), 400, /not a decodable image/);
  await rejects(t, decodeImage(new Uint8Array(MAX_IMAGE_BYTES + 1)), 413, /limit/);
  const tiff = await sharp(png).tiff().toBuffer();
  await rejects(t, decodeImage(tiff), 415, /not supported/);
  await rejects(t, decodeImage(withPngSize(png, 10_000, 10_000)), 413, /pixels/);
});

/** An 8-bit indexed-colour PNG, written by hand (sharp's own palette writer quantises). */
function indexedPng(width: number, height: number, palette: number[][], indices: number[], alpha: number[]) {
  const chunk = (type: string, body: Uint8Array) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])));
    return Buffer.concat([head, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 3, 0, 0, 0], 8); // bit depth 8, colour type 3 (indexed)
  const rows = [];
  for (let y = 0; y < height; y++) rows.push(0, ...indices.slice(y * width, (y + 1) * width));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('PLTE', Uint8Array.from(palette.flat())),
    chunk('tRNS', Uint8Array.from(alpha)),
    chunk('IDAT', deflateSync(Uint8Array.from(rows))),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** A PNG whose header claims width × height (a decompression bomb's calling card). */
function withPngSize(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

// The resize speed is measured by bench/core.ts, against a budget.
