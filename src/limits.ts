/**
 * Every body and size limit of the service, in one place. A request over a limit is refused with
 * 413 Payload Too Large before any work is done on it.
 *
 *   DEFAULT_BODY_BYTES   1 MiB    any JSON body (Fastify's bodyLimit for the whole app)
 *   TEXT_BODY_BYTES      4 MiB    bodies of many texts: tokenize, embed/text, attribution/text
 *   MAX_BODY_BYTES       15 MiB   bodies that carry an image in base64 (a 10 MiB image is 13.3 MiB
 *                                 of base64) plus the rest of the JSON: embed/image, classify,
 *                                 attribution/image
 *   MAX_IMAGE_BYTES      10 MiB   image bytes, decoded from base64 or uploaded as multipart
 *   MAX_IMAGE_PIXELS     16 Mpx   default width × height of an image (4096 × 4096; the MAX_IMAGE_PIXELS
 *                                 variable changes it), checked on its header before decoding and
 *                                 given to sharp as limitInputPixels for the decode itself
 *   MULTIPART_LIMITS              one uploaded file of at most MAX_IMAGE_BYTES, a few small fields
 *
 * This module imports nothing, so routes, plugins and src/clip can all use it without a cycle.
 */

/** Fastify's body limit for every route that does not name its own. */
export const DEFAULT_BODY_BYTES = 1024 * 1024;

/** Body limit of the routes that take a list of texts. */
export const TEXT_BODY_BYTES = 4 * 1024 * 1024;

/** The largest request body the service reads: a 10 MiB image, base64-encoded, plus JSON. */
export const MAX_BODY_BYTES = 15 * 1024 * 1024;

/** The largest image, in bytes, whether uploaded or sent in base64. */
export const MAX_IMAGE_BYTES = 10 * 1024 * 1024;

/**
 * Decompression-bomb guard, the default of the MAX_IMAGE_PIXELS variable: width × height above this
 * is refused (413) from the image's header, before decoding. A 47 KB PNG can declare 7,000 × 7,000
 * pixels, 147 MB once decoded to RGB; 4096 × 4096 (48 MiB of RGB) still takes a 12-Mpx photo.
 */
export const MAX_IMAGE_PIXELS = 4096 * 4096;

/** @fastify/multipart's limits: one image file, and a few form fields of at most 64 KiB. */
export const MULTIPART_LIMITS = {
  fileSize: MAX_IMAGE_BYTES,
  files: 1,
  fields: 16,
  fieldSize: 64 * 1024,
  parts: 20,
} as const;

/**
 * Image collections (src/collections/): images and bytes (of the uploaded originals) one collection
 * may hold, and what one upload request may carry. The COLLECTION_MAX_IMAGES, COLLECTION_MAX_BYTES,
 * COLLECTION_UPLOAD_FILES and COLLECTION_UPLOAD_BYTES variables change them.
 */
export const COLLECTION_MAX_IMAGES = 100_000;
export const COLLECTION_MAX_BYTES = 8 * 1024 * 1024 * 1024;
export const COLLECTION_UPLOAD_FILES = 256;
export const COLLECTION_UPLOAD_BYTES = 256 * 1024 * 1024;
/** Bytes an uploaded archive may expand to (COLLECTION_ARCHIVE_BYTES). */
export const COLLECTION_ARCHIVE_BYTES = 512 * 1024 * 1024;
/**
 * Per owner (an API key, or a client address when the service is open), over all the collections
 * it created (admin keys and the service's own probe collection are exempt): collections
 * (COLLECTION_MAX_COLLECTIONS_PER_OWNER), images (COLLECTION_MAX_IMAGES_PER_OWNER) and bytes of
 * originals (COLLECTION_MAX_BYTES_PER_OWNER), indexed and pending together.
 */
export const COLLECTION_MAX_COLLECTIONS_PER_OWNER = 50;
export const COLLECTION_MAX_IMAGES_PER_OWNER = 500_000;
export const COLLECTION_MAX_BYTES_PER_OWNER = 32 * 1024 * 1024 * 1024;
