/**
 * Archives of images for a collection: .tar, .tar.gz (.tgz) and .zip, read in memory (the upload is
 * bounded by COLLECTION_UPLOAD_BYTES and the expansion by COLLECTION_ARCHIVE_BYTES).
 *
 * Refused whole (400): entries whose path is absolute or leaves its folder (`..`), links (tar
 * hard and symbolic links, zip entries with a symbolic-link mode), special files (devices, FIFOs),
 * encrypted or ZIP64 zip entries, and anything that is not one of the three formats. Refused with
 * 413: an archive that expands past the limit (gzip and deflate stop at the limit, never beyond).
 * Directories are passed over; every regular file becomes an entry, the name of its folder its
 * category (the ImageFolder convention: `cat/1.png` is a cat); files that are not images are left
 * to the build, which skips them and lists them in its report.
 */
import path from 'node:path';
import { gunzipSync, inflateRawSync } from 'node:zlib';
import { badRequest, payloadTooLarge } from '../errors.js';

export interface ArchiveEntry {
  /** The path inside the archive. */
  name: string;
  /** The entry's folder (its last component), or null for a file at the top. */
  category: string | null;
  bytes: Buffer;
}

export interface ArchiveLimits {
  /** Most bytes the archive may expand to (its files together; a .tar.gz's tar stream too). */
  maxBytes: number;
  /** Most files. */
  maxEntries: number;
}

const LIMIT_NAME = 'COLLECTION_ARCHIVE_BYTES';

function tooLarge(limits: ArchiveLimits): Error {
  return payloadTooLarge(`the archive expands past ${limits.maxBytes} bytes (${LIMIT_NAME})`);
}

/** A safe relative path, or a 400 naming the entry. */
function safeName(raw: string): string {
  const name = raw.replace(/\\/g, '/');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) {
    throw badRequest(
      `archive entry "${raw}" has an absolute path; entries must stay inside the archive's folder`,
    );
  }
  const normal = path.posix.normalize(name);
  if (normal === '..' || normal.startsWith('../') || name.split('/').includes('..')) {
    throw badRequest(`archive entry "${raw}" leaves the archive's folder (".."); such archives are refused`);
  }
  return normal.replace(/^\.\//, '');
}

function entryOf(raw: string, bytes: Buffer): ArchiveEntry {
  const name = safeName(raw);
  const folder = path.posix.dirname(name);
  return { name, category: folder === '.' ? null : path.posix.basename(folder), bytes };
}

/** Reads an archive by its first bytes; 400 for anything that is not .tar, .tar.gz or .zip. */
export function readArchive(data: Buffer, limits: ArchiveLimits): ArchiveEntry[] {
  if (data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b) {
    let tar: Buffer;
    try {
      tar = gunzipSync(data, { maxOutputLength: limits.maxBytes });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || error instanceof RangeError) {
        throw tooLarge(limits);
      }
      throw badRequest(`the archive is not a readable gzip stream (${(error as Error).message})`);
    }
    if (!isTar(tar)) throw badRequest('the gzip stream is not a tar archive; send .tar, .tar.gz or .zip');
    return readTar(tar, limits);
  }
  if (data.length >= 4 && data.readUInt32LE(0) === 0x04034b50) return readZip(data, limits);
  if (data.length >= 4 && data.readUInt32LE(0) === 0x06054b50) return [];
  if (isTar(data)) return readTar(data, limits);
  throw badRequest('the archive is not a .tar, .tar.gz or .zip file');
}

function isTar(data: Buffer): boolean {
  return data.length >= 512 && data.subarray(257, 262).toString('latin1') === 'ustar';
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
}

function octal(bytes: Buffer): number {
  const text = cString(bytes).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw badRequest('the tar archive has a malformed header');
  return parseInt(text, 8);
}

/** Pax extended header records: `<length> <key>=<value>\n`. */
function paxPath(data: Buffer): string | undefined {
  let at = 0;
  let found: string | undefined;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0) break;
    const length = Number(data.subarray(at, space).toString('latin1'));
    if (!Number.isInteger(length) || length <= 0) break;
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (record.slice(0, equals) === 'path') found = record.slice(equals + 1);
    at += length;
  }
  return found;
}

function readTar(data: Buffer, limits: ArchiveLimits): ArchiveEntry[] {
  const entries: ArchiveEntry[] = [];
  let total = 0;
  let at = 0;
  let longName: string | undefined;
  while (at + 512 <= data.length) {
    const header = data.subarray(at, at + 512);
    if (header.every((byte) => byte === 0)) break;
    const size = octal(header.subarray(124, 136));
    const type = String.fromCharCode(header[156] || 0x30);
    const prefix = cString(header.subarray(345, 500));
    const base = cString(header.subarray(0, 100));
    const name = longName ?? (prefix ? `${prefix}/${base}` : base);
    const start = at + 512;
    if (start + size > data.length) throw badRequest('the tar archive is truncated');
    const body = data.subarray(start, start + size);
    at = start + Math.ceil(size / 512) * 512;
    if (type === 'x' || type === 'L') {
      longName = type === 'L' ? cString(body) : (paxPath(body) ?? longName);
      continue;
    }
    longName = undefined;
    if (type === 'g') continue;
    if (type === '1' || type === '2') {
      throw badRequest(`archive entry "${name}" is a link; archives with links are refused`);
    }
    if (type === '5') continue;
    if (type !== '0' && type !== '7') {
      throw badRequest(
        `archive entry "${name}" is not a regular file (tar type "${type}"); such archives are refused`,
      );
    }
    total += size;
    if (total > limits.maxBytes) throw tooLarge(limits);
    entries.push(entryOf(name, Buffer.from(body)));
    if (entries.length > limits.maxEntries) {
      throw payloadTooLarge(`the archive has more than ${limits.maxEntries} files (COLLECTION_MAX_IMAGES)`);
    }
  }
  return entries;
}

function readZip(data: Buffer, limits: ArchiveLimits): ArchiveEntry[] {
  // The end of central directory record: 22 bytes, then a comment of at most 65,535 bytes.
  let end = -1;
  for (let i = data.length - 22; i >= Math.max(0, data.length - 22 - 65_535); i--) {
    if (data.readUInt32LE(i) === 0x06054b50) {
      end = i;
      break;
    }
  }
  if (end < 0) throw badRequest('the zip archive has no central directory (truncated?)');
  const count = data.readUInt16LE(end + 10);
  let at = data.readUInt32LE(end + 16);
  if (count === 0xffff || at === 0xffffffff)
    throw badRequest('ZIP64 archives are not supported; send .tar or .tar.gz');
  const entries: ArchiveEntry[] = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > data.length || data.readUInt32LE(at) !== 0x02014b50) {
      throw badRequest('the zip archive has a malformed central directory');
    }
    const flags = data.readUInt16LE(at + 8);
    const method = data.readUInt16LE(at + 10);
    const compressed = data.readUInt32LE(at + 20);
    const size = data.readUInt32LE(at + 24);
    const nameLength = data.readUInt16LE(at + 28);
    const extraLength = data.readUInt16LE(at + 30);
    const commentLength = data.readUInt16LE(at + 32);
    const mode = data.readUInt32LE(at + 38) >>> 16;
    const local = data.readUInt32LE(at + 42);
    const name = data.subarray(at + 46, at + 46 + nameLength).toString('utf8');
    at += 46 + nameLength + extraLength + commentLength;
    if ((mode & 0o170000) === 0o120000) {
      throw badRequest(`archive entry "${name}" is a link; archives with links are refused`);
    }
    if (name.endsWith('/')) {
      safeName(name);
      continue;
    }
    if (flags & 1) throw badRequest(`archive entry "${name}" is encrypted; encrypted archives are refused`);
    if (compressed === 0xffffffff || size === 0xffffffff) {
      throw badRequest('ZIP64 archives are not supported; send .tar or .tar.gz');
    }
    safeName(name);
    if (local + 30 > data.length || data.readUInt32LE(local) !== 0x04034b50) {
      throw badRequest(`the zip archive's entry "${name}" is malformed`);
    }
    const start = local + 30 + data.readUInt16LE(local + 26) + data.readUInt16LE(local + 28);
    if (start + compressed > data.length) throw badRequest(`the zip archive's entry "${name}" is truncated`);
    const raw = data.subarray(start, start + compressed);
    const budget = limits.maxBytes - total;
    if (size > budget) throw tooLarge(limits);
    let bytes: Buffer;
    if (method === 0) bytes = Buffer.from(raw);
    else if (method === 8) {
      try {
        bytes = inflateRawSync(raw, { maxOutputLength: Math.max(1, budget) });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || error instanceof RangeError) {
          throw tooLarge(limits);
        }
        throw badRequest(`the zip archive's entry "${name}" does not inflate (${(error as Error).message})`);
      }
    } else {
      throw badRequest(
        `archive entry "${name}" uses zip method ${method}; only stored and deflated entries are read`,
      );
    }
    total += bytes.length;
    if (total > limits.maxBytes) throw tooLarge(limits);
    entries.push(entryOf(name, bytes));
    if (entries.length > limits.maxEntries) {
      throw payloadTooLarge(`the archive has more than ${limits.maxEntries} files (COLLECTION_MAX_IMAGES)`);
    }
  }
  return entries;
}
