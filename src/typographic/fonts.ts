/**
 * The fonts a typographic attack may write with: the DejaVu faces of the bundled `dejavu-fonts-ttf`
 * package (the rasteriser's DejaVu Sans among them), registered into Skia under private family
 * names the first time they are used.
 */
import { GlobalFonts } from '@napi-rs/canvas';
import { createRequire } from 'node:module';
import path from 'node:path';
import { badRequest } from '../errors.js';

/** Font name → file in dejavu-fonts-ttf/ttf/. */
export const FONT_FILES: Readonly<Record<string, string>> = {
  sans: 'DejaVuSans.ttf',
  'sans-bold': 'DejaVuSans-Bold.ttf',
  'sans-oblique': 'DejaVuSans-Oblique.ttf',
  'sans-condensed': 'DejaVuSansCondensed.ttf',
  'sans-condensed-bold': 'DejaVuSansCondensed-Bold.ttf',
  serif: 'DejaVuSerif.ttf',
  'serif-bold': 'DejaVuSerif-Bold.ttf',
  'serif-italic': 'DejaVuSerif-Italic.ttf',
  mono: 'DejaVuSansMono.ttf',
  'mono-bold': 'DejaVuSansMono-Bold.ttf',
};

export const FONT_NAMES = Object.keys(FONT_FILES);
export const DEFAULT_FONT = 'sans';

const registered = new Map<string, string>();

/** The Skia family of a font name (registering it once); a 400 listing the fonts for another name. */
export function fontFamily(name: string): string {
  const file = Object.hasOwn(FONT_FILES, name) ? FONT_FILES[name] : undefined;
  if (!file) throw badRequest(`unknown font "${name.slice(0, 40)}": the fonts are ${FONT_NAMES.join(', ')}`);
  let family = registered.get(name);
  if (!family) {
    const require = createRequire(import.meta.url);
    const dir = path.join(path.dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf');
    family = `multimodal-neurons typographic ${name}`;
    if (!GlobalFonts.registerFromPath(path.join(dir, file), family)) throw new Error(`cannot load ${file}`);
    registered.set(name, family);
  }
  return family;
}
