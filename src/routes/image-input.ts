/**
 * Images arrive as base64 in JSON (`{"image": "..."}`, or `{"images": [...]}` on routes that take
 * several) or as a multipart upload (file field `image`, repeated for several on those routes). For
 * multipart requests a preValidation hook reads the parts into the body, so one TypeBox schema
 * validates both; the uploaded bytes are kept aside, never re-encoded.
 */
import type { FastifyRequest } from 'fastify';
import { MAX_BODY_BYTES, MAX_IMAGE_BYTES } from '../limits.js';
import { badRequest, payloadTooLarge } from '../errors.js';

const UPLOAD_MARKER = 'multipart-upload';
const uploads = new WeakMap<FastifyRequest, Buffer[]>();

/** Files one multipart request may carry on a route that takes several images (`images`). */
export const MAX_UPLOAD_FILES = 4096;

/** Whether the route's body schema takes several images (an `images` property). */
function takesSeveral(request: FastifyRequest): boolean {
  const body = request.routeOptions.schema?.body as { properties?: Record<string, unknown> } | undefined;
  return body?.properties?.images !== undefined;
}

/**
 * The code of a request body over its route's limit: Fastify's own (FST_ERR_CTP_BODY_TOO_LARGE),
 * which the uploads of one multipart request over MAX_BODY_BYTES together carry too, so that a route
 * can say in one place how to send more (see the typographic routes' errorHandler).
 */
export const BODY_TOO_LARGE = 'FST_ERR_CTP_BODY_TOO_LARGE';

/**
 * A route's errorHandler that answers a body over MAX_BODY_BYTES (Fastify's refusal, or a multipart
 * request's uploads together) with a 413 naming the limit and `advice` (how to send more); every
 * other error goes on to the app's handler.
 */
export function bodyTooLargeAdvice(advice: string) {
  return (error: Error & { code?: string }): never => {
    if (error.code === BODY_TOO_LARGE) {
      throw payloadTooLarge(
        `the request is over ${MAX_BODY_BYTES / (1024 * 1024)} MiB, the most one request with images may carry (MAX_BODY_BYTES; one 10 MiB image is 13.3 MiB in base64); ${advice}`,
      );
    }
    throw error;
  };
}

const WHAT_TO_SEND =
  'send multipart/form-data with its boundary (curl -F image=@picture.png does both) and the file in the field "image"';

export async function multipartToBody(request: FastifyRequest): Promise<void> {
  if (!request.isMultipart()) return;
  // busboy throws a bare Error (a 500) for a multipart content type without a boundary.
  if (!/;\s*boundary=("[^"]+"|[^;\s]+)/i.test(request.headers['content-type'] ?? '')) {
    throw badRequest(`the multipart content type has no boundary; ${WHAT_TO_SEND}`);
  }
  const body: Record<string, unknown> = {};
  const several = takesSeveral(request);
  const files: Buffer[] = [];
  let total = 0;
  try {
    // One file, or on routes that take several, up to MAX_UPLOAD_FILES of at most MAX_BODY_BYTES together.
    const parts = request.parts(several ? { limits: { files: MAX_UPLOAD_FILES + 1 } } : undefined);
    for await (const part of parts) {
      if (part.type === 'file') {
        if (part.fieldname !== 'image') {
          throw badRequest(
            `unexpected file field "${part.fieldname}"; use "image"${several ? ' (repeated for several images)' : ''}`,
          );
        }
        const bytes = await part.toBuffer();
        total += bytes.length;
        if (total > MAX_BODY_BYTES) {
          throw Object.assign(
            payloadTooLarge(
              `the uploaded images exceed ${MAX_BODY_BYTES / (1024 * 1024)} MiB together; send fewer or smaller images`,
            ),
            { code: BODY_TOO_LARGE },
          );
        }
        if (files.length >= MAX_UPLOAD_FILES) {
          throw payloadTooLarge(`more than ${MAX_UPLOAD_FILES} image files in one request`);
        }
        files.push(bytes);
      } else {
        // A field given twice would silently keep its last value: name it instead.
        if (Object.hasOwn(body, part.fieldname)) {
          throw badRequest(
            `the field "${part.fieldname.slice(0, 40)}" is given twice; send each field once (a list as one JSON array, e.g. labels=["red","blue"])`,
          );
        }
        body[part.fieldname] = parseField(part.value);
      }
    }
  } catch (error) {
    // @fastify/multipart's file-size refusal names no limit ("request file too large").
    if ((error as { code?: unknown }).code === 'FST_REQ_FILE_TOO_LARGE') {
      throw payloadTooLarge(
        `an uploaded image is over ${MAX_IMAGE_BYTES / (1024 * 1024)} MiB, the most one image may be (MAX_IMAGE_BYTES)`,
      );
    }
    // Limits (413) and our own 400s carry a status; a malformed body from busboy does not.
    if (typeof (error as { statusCode?: unknown }).statusCode === 'number') throw error;
    throw badRequest(`the multipart body could not be read (${(error as Error).message}); ${WHAT_TO_SEND}`);
  }
  if (files.length > 0) {
    uploads.set(request, files);
    if (files.length === 1) body.image = UPLOAD_MARKER;
    else body.images = files.map((_, i) => `${UPLOAD_MARKER}:${i}`);
  }
  request.body = body;
}

/** The fields of a multipart form are strings; JSON arrays, objects and numbers are parsed. */
function parseField(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const trimmed = value.trim();
  if (/^[[{]/.test(trimmed) || /^-?\d+(\.\d+)?$/.test(trimmed) || trimmed === 'true' || trimmed === 'false') {
    try {
      return JSON.parse(trimmed);
    } catch {
      return value;
    }
  }
  return value;
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** The image bytes of a request: the multipart upload, or the base64 field decoded. */
export function imageBytes(request: FastifyRequest, field: string): Buffer {
  const uploaded = uploads.get(request);
  if (uploaded !== undefined) {
    if (field === UPLOAD_MARKER) return uploaded[0];
    const index = /^multipart-upload:(\d+)$/.exec(field)?.[1];
    if (index !== undefined && Number(index) < uploaded.length) return uploaded[Number(index)];
  }
  const base64 = field.startsWith('data:') ? field.slice(field.indexOf(',') + 1) : field;
  const compact = base64.replace(/\s+/g, '');
  if (!BASE64.test(compact)) throw badRequest('image must be base64-encoded image bytes');
  if ((compact.length * 3) / 4 > MAX_IMAGE_BYTES + 3) {
    throw payloadTooLarge(`image is larger than ${MAX_IMAGE_BYTES / (1024 * 1024)} MiB (MAX_IMAGE_BYTES)`);
  }
  const bytes = Buffer.from(compact, 'base64');
  if (bytes.length === 0) throw badRequest('image is empty');
  return bytes;
}
