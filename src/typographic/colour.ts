/**
 * Colours as users write them: a name from a short list (the basic CSS names) or `#rrggbb` /
 * `#rgb`. Anything else is a 400 that lists the forms and the names.
 */
import { badRequest } from '../errors.js';

export type Rgb = readonly [number, number, number];

/** The named colours (CSS's values for these names). */
export const NAMED_COLOURS: Readonly<Record<string, Rgb>> = {
  black: [0, 0, 0],
  white: [255, 255, 255],
  grey: [128, 128, 128],
  gray: [128, 128, 128],
  red: [255, 0, 0],
  orange: [255, 165, 0],
  yellow: [255, 255, 0],
  green: [0, 128, 0],
  blue: [0, 0, 255],
  purple: [128, 0, 128],
  pink: [255, 192, 203],
  brown: [165, 42, 42],
  cyan: [0, 255, 255],
  magenta: [255, 0, 255],
};

/** The sentence a bad colour's 400 carries. */
export const COLOUR_FORMS = `a colour is #rrggbb, #rgb or one of ${Object.keys(NAMED_COLOURS).join(', ')}`;

/** The RGB triple of a colour name (own names only: "__proto__" is none), or undefined. */
export function namedColour(name: string): Rgb | undefined {
  const value = name.trim().toLowerCase();
  return Object.hasOwn(NAMED_COLOURS, value) ? NAMED_COLOURS[value] : undefined;
}

/** The RGB triple of a colour, or undefined when it is not one of the forms. */
export function tryParseColour(text: string): Rgb | undefined {
  const named = namedColour(text);
  if (named) return named;
  const value = text.trim().toLowerCase();
  const long = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/.exec(value);
  if (long) return [parseInt(long[1], 16), parseInt(long[2], 16), parseInt(long[3], 16)];
  const short = /^#([0-9a-f])([0-9a-f])([0-9a-f])$/.exec(value);
  if (short) return [parseInt(short[1], 16) * 17, parseInt(short[2], 16) * 17, parseInt(short[3], 16) * 17];
  return undefined;
}

/** The RGB triple of a colour; a 400 naming the field and the accepted forms otherwise. */
export function parseColour(text: string, field: string): Rgb {
  const rgb = tryParseColour(text);
  if (!rgb) throw badRequest(`${field} "${text.slice(0, 40)}" is not a colour: ${COLOUR_FORMS}`);
  return rgb;
}

export function hexOf(rgb: Rgb): string {
  return `#${rgb.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}
