/**
 * The word rasteriser: its layout rule, determinism and errors, and agreement with the Pillow
 * implementation in tools/raster/raster.py (identical layout numbers, near-identical pixels).
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

import { HttpError } from '../src/errors.js';
import type { RgbImage } from '../src/clip/image.js';
import {
  RASTER_LAYOUT,
  layoutText,
  normaliseRasterText,
  rasterizePng,
  rasterizeText,
} from '../src/clip/raster.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = '/usr/bin/python3';
const PY_RASTER = path.resolve(repoRoot, 'tools/raster/raster.py');

/** The ink's bounding box [left, top, right, bottom] (inclusive), counting pixels darker than 128. */
function inkBox(img: RgbImage): [number, number, number, number] | undefined {
  let [left, top, right, bottom] = [Infinity, Infinity, -1, -1];
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      if (img.data[(y * img.width + x) * 3] < 128) {
        left = Math.min(left, x);
        right = Math.max(right, x);
        top = Math.min(top, y);
        bottom = Math.max(bottom, y);
      }
    }
  }
  return right < 0 ? undefined : [left, top, right, bottom];
}

function status(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof HttpError ? error.statusCode : -1;
  }
  return undefined;
}

function hasPil(): boolean {
  try {
    execFileSync(PYTHON, ['-c', 'import PIL'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

t.test('agrees with tools/raster/raster.py (Pillow)', { skip: !hasPil() && 'no PIL' }, async (t) => {
  const words = [
    'yellow',
    'King',
    'iPod',
    'a',
    'i am feeling jealous today',
    'Ünïcödé café',
    'WAVE 42',
    'x\ty\nz',
    'the quick brown fox jumps over the lazy dog',
    'Ωμέγα 漢字',
  ];
  for (const size of [64, 224]) {
    const dir = mkdtempSync(path.join(tmpdir(), 'raster-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    execFileSync(PYTHON, [PY_RASTER, dir, String(size), ...words]);
    const layouts = JSON.parse(readFileSync(path.join(dir, 'layouts.json'), 'utf8')) as unknown[];
    for (const [i, word] of words.entries()) {
      t.same(layoutText(word, size), layouts[i], `${JSON.stringify(word)} at ${size}: identical layout`);
      const ours = rasterizeText(word, size);
      const theirs: RgbImage = { width: size, height: size, data: readFileSync(path.join(dir, `${i}.rgb`)) };
      let diff = 0;
      for (let k = 0; k < ours.data.length; k++) diff += Math.abs(ours.data[k] - theirs.data[k]);
      const meanDiff = diff / ours.data.length;
      t.ok(meanDiff < 4, `${JSON.stringify(word)} at ${size}: mean |Δ| = ${meanDiff.toFixed(2)} / 255`);
      const [a, b] = [inkBox(ours), inkBox(theirs)];
      t.ok(a && b, 'both have ink');
      const worst = Math.max(...a!.map((v, k) => Math.abs(v - b![k])));
      t.ok(worst <= 2, `${JSON.stringify(word)} at ${size}: ink boxes ${a} vs ${b}`);
    }
  }
});

t.test('deterministic, inked, centred, inside the margin', async (t) => {
  for (const [word, size] of [
    ['yellow', 64],
    ['Trump', 224],
    ['the quick brown fox', 288],
  ] as const) {
    const first = rasterizeText(word, size);
    t.same(Buffer.from(rasterizeText(word, size).data), Buffer.from(first.data), `${word}: same bytes twice`);
    t.equal(Buffer.compare(await rasterizePng(word, size), await rasterizePng(word, size)), 0, 'same PNG');
    const box = inkBox(first);
    t.ok(box, `${word} has ink`);
    const [left, top, right, bottom] = box!;
    const margin = Math.floor(size * RASTER_LAYOUT.marginFraction + 0.5);
    t.ok(
      left >= margin - 1 && top >= margin - 1 && right <= size - margin && bottom <= size - margin,
      'inside',
    );
    t.ok(
      Math.abs(left + right - (size - 1)) <= 2 && Math.abs(top + bottom - (size - 1)) <= 2,
      `centred: ${box}`,
    );
  }
  const png = await rasterizePng('yellow', 64);
  const meta = await sharp(png).metadata();
  t.same([meta.format, meta.width, meta.height, meta.channels], ['png', 64, 64, 3]);
});

t.test('layout: larger font for shorter text, wrapping at spaces, the size cap', async (t) => {
  const one = layoutText('love', 224);
  t.equal(one.lines.length, 1);
  t.ok(one.fontPx < layoutText('lo', 224).fontPx);
  t.equal(layoutText('a', 224).fontPx, Math.floor(224 * RASTER_LAYOUT.maxFontFraction), 'capped');
  const phrase = layoutText('a picture of an angry man', 224);
  t.ok(phrase.lines.length > 1 && phrase.lines.length <= RASTER_LAYOUT.maxLines, 'wraps');
  t.equal(
    phrase.lines.map((l) => l.text).join(' '),
    'a picture of an angry man',
    'keeps every word, in order',
  );
  const long = layoutText('one two three four five six seven eight nine ten', 224);
  t.equal(long.lines.length, 3);
  t.ok(long.fontPx >= RASTER_LAYOUT.minFontPx);
});

t.test('text normalisation and unicode', async (t) => {
  t.equal(normaliseRasterText('  hello \t\n  world\u0007 '), 'hello world');
  t.equal(normaliseRasterText('cafe\u0301'), 'café', 'NFC');
  t.equal(layoutText('漢字', 64).lines[0].text, '\uFFFD\uFFFD', 'characters missing from the font → U+FFFD');
  t.ok(inkBox(rasterizeText('Ωμέγα ñ ß', 128)), 'Greek and Latin-1 draw');
  t.ok(inkBox(rasterizeText('🙂', 64)), 'an emoji draws as U+FFFD');
});

t.test('errors are 400s', async (t) => {
  t.equal(
    status(() => rasterizeText('', 64)),
    400,
    'empty',
  );
  t.equal(
    status(() => rasterizeText(' \t\n\u0001', 64)),
    400,
    'whitespace and controls only',
  );
  t.equal(
    status(() => rasterizeText('x'.repeat(RASTER_LAYOUT.maxChars + 1), 224)),
    400,
    'over maxChars',
  );
  t.equal(
    status(() => rasterizeText('supercalifragilisticexpialidocious', 64)),
    400,
    'too long for 64 px',
  );
  t.equal(
    status(() => rasterizeText('\u200b', 64)),
    400,
    'no visible ink',
  );
  t.equal(
    status(() => rasterizeText('ok', 3)),
    400,
    'size out of range',
  );
});
