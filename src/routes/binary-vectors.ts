/**
 * Vectors without JSON: the binary forms of the routes that answer float vectors or matrices.
 *
 * A route offers three media types for its 200 answer, chosen by the request's `Accept` header
 * (RFC 9110 §12.5.1: media ranges, `q` weights, wildcards):
 *
 * - `application/json` (the default: no Accept, `*∕*`, `application/*`): the route's JSON, unchanged;
 * - `application/x-npy`: a NumPy `.npy` file (format 1.0, dtype `<f4`, C order), which
 *   `numpy.load(io.BytesIO(body))` reads as is;
 * - `application/octet-stream`: the same float32 values, little-endian, row after row, and nothing else.
 *
 * Both binary forms carry the array's shape and dtype in headers (`X-Shape: 64,640`, `X-Dtype:
 * float32`). An Accept header that allows none of the three is a 406 naming them. Every answer of
 * such a route says `Vary: Accept`. Routes use `vectorResponse` for their 200 schema (one source for
 * validation, serialisation and the OpenAPI document), `vectorFormat` to read the request, and
 * `sendVectors` to answer.
 */
import { endianness } from 'node:os';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TSchema } from '@sinclair/typebox';
import { HttpError } from '../errors.js';

export const NPY_TYPE = 'application/x-npy';
export const RAW_TYPE = 'application/octet-stream';
export const JSON_TYPE = 'application/json';

/** The media types a vector route answers, in the service's order of preference. */
export const VECTOR_MEDIA_TYPES = [JSON_TYPE, NPY_TYPE, RAW_TYPE] as const;
export type VectorMediaType = (typeof VECTOR_MEDIA_TYPES)[number];

export const SHAPE_HEADER = 'x-shape';
export const DTYPE_HEADER = 'x-dtype';

const BinaryBody = Type.String({ format: 'binary' });

/**
 * The 200 response of a vector route: its JSON schema, and the two binary forms of `array` (what
 * the binary body holds, e.g. "the text embeddings [N, D]"), with their headers.
 */
export function vectorResponse<T extends TSchema>(json: T, array: string) {
  return {
    description: `JSON by default; with Accept: ${NPY_TYPE} or ${RAW_TYPE}, ${array} as float32 (see the headers)`,
    headers: {
      [SHAPE_HEADER]: Type.String({
        description: `Binary forms only: the array's shape, comma-separated (e.g. "64,640")`,
      }),
      [DTYPE_HEADER]: Type.String({ description: 'Binary forms only: "float32" (little-endian)' }),
    },
    content: {
      [JSON_TYPE]: { schema: json },
      [NPY_TYPE]: {
        schema: {
          ...BinaryBody,
          description: `${array}: a NumPy .npy file (dtype <f4), numpy.load reads it`,
        },
      },
      [RAW_TYPE]: {
        schema: {
          ...BinaryBody,
          description: `${array}: little-endian float32 values, rows in order, shape in X-Shape`,
        },
      },
    },
  };
}

interface MediaRange {
  type: string;
  subtype: string;
  q: number;
  /** Position in the header: ties between equal weights go to the range listed first. */
  order: number;
}

/** The media ranges of an Accept header; malformed ranges are skipped. */
function mediaRanges(accept: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  accept.split(',').forEach((part, order) => {
    const [range, ...parameters] = part.split(';').map((piece) => piece.trim());
    const match = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)\/([A-Za-z0-9!#$%&'*+.^_`|~-]+)$/.exec(range ?? '');
    if (!match) return;
    const [type, subtype] = [match[1]!.toLowerCase(), match[2]!.toLowerCase()];
    if (type === '*' && subtype !== '*') return;
    let q = 1;
    for (const parameter of parameters) {
      const weight = /^q\s*=\s*([0-9](?:\.[0-9]{0,3})?)$/i.exec(parameter);
      if (weight) q = Math.min(1, Number(weight[1]));
    }
    ranges.push({ type, subtype, q, order });
  });
  return ranges;
}

/** How specifically a range names a media type: 2 exactly, 1 by its type, 0 as * / *, -1 not at all. */
function specificity(range: MediaRange, mediaType: string): number {
  const [type, subtype] = mediaType.split('/');
  if (range.type === '*') return 0;
  if (range.type !== type) return -1;
  if (range.subtype === '*') return 1;
  return range.subtype === subtype ? 2 : -1;
}

/**
 * The media type to answer for an Accept header: each offered type takes the weight of the most
 * specific range that names it; the heaviest wins, ties going to the range listed first, then to
 * the order of `offered`. No header (or an empty one) is JSON. Throws a 406 when nothing offered
 * is acceptable.
 */
export function negotiate(
  accept: string | undefined,
  offered: readonly VectorMediaType[] = VECTOR_MEDIA_TYPES,
): VectorMediaType {
  if (accept === undefined || accept.trim() === '') return offered[0]!;
  const ranges = mediaRanges(accept);
  let best: { type: VectorMediaType; q: number; order: number } | undefined;
  for (const type of offered) {
    let chosen: MediaRange | undefined;
    let chosenSpecificity = -1;
    for (const range of ranges) {
      const s = specificity(range, type);
      if (s > chosenSpecificity) [chosen, chosenSpecificity] = [range, s];
    }
    if (!chosen || chosen.q <= 0) continue;
    const order = chosenSpecificity === 2 ? chosen.order : Number.MAX_SAFE_INTEGER;
    if (!best || chosen.q > best.q || (chosen.q === best.q && order < best.order))
      best = { type, q: chosen.q, order };
  }
  if (!best)
    throw new HttpError(
      406,
      `Accept allows none of the forms of this answer: ask for ${offered.join(', ')} (or send no Accept header for JSON)`,
    );
  return best.type;
}

/**
 * The answer's media type for a request (see `negotiate`); sets `Vary: Accept` on the reply. A JSON
 * answer is serialised with V8's JSON.stringify instead of the schema's compiled serialiser
 * (fast-json-stringify), which builds the text number by number in JavaScript: on 64 × 640 floats
 * it took about 3× as long (95 vs 34 ms), a third of an RN50-x4 text batch. The text is the same:
 * both write a number as Number#toString does and leave out undefined fields, and the handlers
 * build their objects in the schema's field order with no field the schema lacks
 * (test/binary-vectors.test.ts compares the two).
 */
export function vectorFormat(request: FastifyRequest, reply: FastifyReply): VectorMediaType {
  // Added to what is there (CORS with a list of origins has set `Vary: Origin`).
  const vary = String(reply.getHeader('vary') ?? '');
  if (!/(^|,)\s*(accept|\*)\s*(,|$)/i.test(vary)) reply.header('vary', vary ? `${vary}, Accept` : 'Accept');
  const format = negotiate(request.headers.accept);
  if (format === JSON_TYPE) reply.type('application/json; charset=utf-8').serializer(JSON.stringify);
  return format;
}

const LITTLE_ENDIAN = endianness() === 'LE';

/** The .npy header (format 1.0) of a little-endian float32 array, padded to a multiple of 64 bytes. */
export function npyHeader(shape: readonly number[]): Uint8Array {
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${tuple}, }`;
  const unpadded = 10 + dict.length + 1;
  const length = Math.ceil(unpadded / 64) * 64;
  const header = new Uint8Array(length);
  header.set([0x93, ...Buffer.from('NUMPY', 'latin1'), 1, 0]);
  new DataView(header.buffer).setUint16(8, length - 10, true);
  header.set(Buffer.from(dict.padEnd(length - 11, ' ') + '\n', 'latin1'), 10);
  return header;
}

/**
 * The rows (each of `columns` values) as one little-endian float32 body, after `prefix`; `shape`
 * is [rows.length, columns], or [columns] for a single vector.
 */
export function float32Body(rows: readonly Float32Array[], columns: number, prefix?: Uint8Array): Buffer {
  const offset = prefix?.length ?? 0;
  const buffer = new ArrayBuffer(offset + rows.length * columns * 4);
  if (prefix) new Uint8Array(buffer).set(prefix);
  if (LITTLE_ENDIAN && offset % 4 === 0) {
    const values = new Float32Array(buffer, offset, rows.length * columns);
    rows.forEach((row, i) => values.set(row.subarray(0, columns), i * columns));
  } else {
    const view = new DataView(buffer);
    rows.forEach((row, i) => {
      for (let j = 0; j < columns; j++) view.setFloat32(offset + (i * columns + j) * 4, row[j]!, true);
    });
  }
  return Buffer.from(buffer);
}

/**
 * Answers `rows` in a binary form: a matrix [rows, columns], or with `vector: true` the single row
 * as a vector [columns]. Every row must hold `columns` values.
 */
export function sendVectors(
  reply: FastifyReply,
  format: Exclude<VectorMediaType, typeof JSON_TYPE>,
  rows: readonly Float32Array[],
  options: { columns: number; vector?: boolean },
): FastifyReply {
  const { columns, vector = false } = options;
  for (const row of rows)
    if (row.length !== columns) throw new Error(`a row of ${row.length} values where ${columns} were due`);
  if (vector && rows.length !== 1) throw new Error(`a vector answer needs one row, not ${rows.length}`);
  const shape = vector ? [columns] : [rows.length, columns];
  const body = float32Body(rows, columns, format === NPY_TYPE ? npyHeader(shape) : undefined);
  return reply.type(format).header(SHAPE_HEADER, shape.join(',')).header(DTYPE_HEADER, 'float32').send(body);
}
