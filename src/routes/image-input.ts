/**
 * Images arrive as base64 in JSON (`{"image": "..."}`) or as a multipart upload (file field
 * `image`). For multipart requests a preValidation hook reads the parts into the body, so one
 * TypeBox schema validates both; the uploaded bytes are kept aside, never re-encoded.
 */
import type { FastifyRequest } from 'fastify';
import { MAX_IMAGE_BYTES } from '../limits.js';
import { badRequest, payloadTooLarge } from '../errors.js';

const UPLOAD_MARKER = 'multipart-upload';
const uploads = new WeakMap<FastifyRequest, Buffer>();

const WHAT_TO_SEND =
  'send multipart/form-data with its boundary (curl -F image=@picture.png does both) and the file in the field "image"';

export async function multipartToBody(request: FastifyRequest): Promise<void> {
  if (!request.isMultipart()) return;
  // busboy throws a bare Error (a 500) for a multipart content type without a boundary.
  if (!/;\s*boundary=("[^"]+"|[^;\s]+)/i.test(request.headers['content-type'] ?? '')) {
    throw badRequest(`the multipart content type has no boundary; ${WHAT_TO_SEND}`);
  }
  const body: Record<string, unknown> = {};
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        const bytes = await part.toBuffer();
        if (part.fieldname !== 'image')
          throw badRequest(`unexpected file field "${part.fieldname}"; use "image"`);
        uploads.set(request, bytes);
        body.image = UPLOAD_MARKER;
      } else {
        body[part.fieldname] = parseField(part.value);
      }
    }
  } catch (error) {
    // Limits (413) and our own 400s carry a status; a malformed body from busboy does not.
    if (typeof (error as { statusCode?: unknown }).statusCode === 'number') throw error;
    throw badRequest(`the multipart body could not be read (${(error as Error).message}); ${WHAT_TO_SEND}`);
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
  if (uploaded !== undefined && field === UPLOAD_MARKER) return uploaded;
  const base64 = field.startsWith('data:') ? field.slice(field.indexOf(',') + 1) : field;
  const compact = base64.replace(/\s+/g, '');
  if (!BASE64.test(compact)) throw badRequest('image must be base64-encoded image bytes');
  if ((compact.length * 3) / 4 > MAX_IMAGE_BYTES + 3) {
    throw payloadTooLarge(`image is larger than ${MAX_IMAGE_BYTES / (1024 * 1024)} MB`);
  }
  const bytes = Buffer.from(compact, 'base64');
  if (bytes.length === 0) throw badRequest('image is empty');
  return bytes;
}
