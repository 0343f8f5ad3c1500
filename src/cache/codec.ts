/**
 * How values become cache bytes and back. A Float32Array is stored as its raw little-endian IEEE 754
 * bytes (bit-exact: NaN payloads, -0 and denormals survive), and JSON as UTF-8 text.
 */
import { endianness } from 'node:os';

const HOST_IS_LITTLE_ENDIAN = endianness() === 'LE';

/** The vector's bytes. On little-endian hosts this is a view of the vector's memory, not a copy. */
export function vectorToBytes(vector: Float32Array): Buffer {
  const view = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength);
  // Never swap the caller's memory in place: swap a copy.
  return HOST_IS_LITTLE_ENDIAN ? view : Buffer.from(view).swap32();
}

/**
 * The vector stored in `bytes`, or undefined if they cannot hold one. The result is a view of
 * `bytes` when their offset is 4-byte aligned, else a copy in a fresh ArrayBuffer: a Float32Array
 * cannot start at an unaligned offset.
 */
export function bytesToVector(bytes: Buffer): Float32Array | undefined {
  if (bytes.byteLength % Float32Array.BYTES_PER_ELEMENT !== 0) return undefined;
  const length = bytes.byteLength / Float32Array.BYTES_PER_ELEMENT;
  if (HOST_IS_LITTLE_ENDIAN && bytes.byteOffset % Float32Array.BYTES_PER_ELEMENT === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, length);
  }
  const aligned = new ArrayBuffer(bytes.byteLength);
  const copy = Buffer.from(aligned);
  bytes.copy(copy);
  if (!HOST_IS_LITTLE_ENDIAN) copy.swap32();
  return new Float32Array(aligned);
}

export function jsonToBytes(value: unknown): Buffer {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError('the value has no JSON representation');
  return Buffer.from(text, 'utf8');
}

/** The parsed JSON, or undefined if the bytes are not JSON. The type parameter is not checked. */
export function bytesToJson<T>(bytes: Buffer): T | undefined {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}
