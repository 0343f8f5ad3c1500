/**
 * Where word indexes live: `<dataDir>/word-index/<modelSha>-<vocabSha>.{json,f32}` on disk, and one
 * binary value in the shared cache (Redis) so that a second server loads instead of rebuilding.
 *
 *   <name>.json          header: words, μ, lexical scores, provenance (JSON)
 *   <name>.f32           the centred rows c [V, C], little-endian float32
 *   <name>.partial.f32   during a build: the uncentred rows x of the chunks finished so far
 *   <name>.partial.json  during a build: how many rows of the partial file are complete
 *
 * Final files are written to a temporary name and renamed, so a reader never sees half an index.
 * The cached value is [u32 header length][header JSON][zero padding to 4 bytes][c as float32].
 */
import { mkdir, open, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { BinaryCache } from '../cache/index.js';
import { cacheKey } from '../cache/index.js';
import type { LexicalScores } from './lexical.js';
import { WordIndex } from './word-index.js';

export const INDEX_FORMAT = 2;
const CACHE_OPERATION = 'word-index.v2';
/** Shared indexes outlive ordinary cache entries: 30 days. */
const CACHE_TTL_SECONDS = 30 * 86400;

export interface IndexHeader {
  format: typeof INDEX_FORMAT;
  modelSha256: string;
  vocabularySha256: string;
  rows: number;
  columns: number;
  words: string[];
  /** μ [C], the mean of the uncentred rows. */
  mean: number[];
  lexical?: LexicalScores;
  /** Words the rasteriser refused at this model's input size (their rows are NaN). */
  unrenderable?: string[];
  builtAt: string;
  buildSeconds: number;
}

export interface StoredIndex {
  header: IndexHeader;
  index: WordIndex;
}

export interface PartialProgress {
  rows: number;
  columns: number;
  /** Rows of the partial file that are complete (a multiple of chunkSize, or all rows). */
  done: number;
  chunkSize: number;
}

export class IndexStore {
  readonly dir: string;

  constructor(
    dataDir: string,
    readonly modelSha256: string,
    readonly vocabularySha256: string,
    private readonly cache?: BinaryCache,
  ) {
    this.dir = path.join(dataDir, 'word-index');
  }

  get name(): string {
    return `${this.modelSha256}-${this.vocabularySha256}`;
  }

  file(suffix: string): string {
    return path.join(this.dir, `${this.name}${suffix}`);
  }

  get cacheKey(): string {
    return cacheKey(this.modelSha256, CACHE_OPERATION, this.vocabularySha256);
  }

  exists(): boolean {
    return existsSync(this.file('.json')) && existsSync(this.file('.f32'));
  }

  async readFromDisk(): Promise<StoredIndex | undefined> {
    if (!this.exists()) return undefined;
    const header = JSON.parse(await readFile(this.file('.json'), 'utf8')) as IndexHeader;
    const bytes = await readFile(this.file('.f32'));
    return this.fromParts(header, bytes);
  }

  async writeToDisk(header: IndexHeader, index: WordIndex): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = `.tmp-${process.pid}-${Date.now()}`;
    await writeFile(this.file('.f32' + tmp), floatBytes(index.centred));
    await writeFile(this.file('.json' + tmp), JSON.stringify(header));
    await rename(this.file('.f32' + tmp), this.file('.f32'));
    await rename(this.file('.json' + tmp), this.file('.json'));
  }

  /** The index shared in the cache, or undefined (absent, unreadable, or the cache is down). */
  async readFromCache(): Promise<StoredIndex | undefined> {
    const value = await this.cache?.getBuffer(this.cacheKey);
    if (value === undefined || value.length < 4) return undefined;
    const headerLength = value.readUInt32LE(0);
    const dataStart = align4(4 + headerLength);
    try {
      const header = JSON.parse(value.subarray(4, 4 + headerLength).toString('utf8')) as IndexHeader;
      return this.fromParts(header, value.subarray(dataStart));
    } catch {
      return undefined;
    }
  }

  async writeToCache(header: IndexHeader, index: WordIndex): Promise<void> {
    if (this.cache === undefined) return;
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const dataStart = align4(4 + json.length);
    const value = Buffer.alloc(dataStart + index.centred.byteLength);
    value.writeUInt32LE(json.length, 0);
    json.copy(value, 4);
    floatBytes(index.centred).copy(value, dataStart);
    await this.cache.setBuffer(this.cacheKey, value, CACHE_TTL_SECONDS);
  }

  // --- one builder per index across processes ---------------------------------------------------

  /**
   * Takes the build lock (`<name>.lock`, holding the builder's pid). A lock whose process is gone
   * is taken over. Returns false while another live process holds it.
   */
  async tryLock(): Promise<boolean> {
    await mkdir(this.dir, { recursive: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(this.file('.lock'), String(process.pid), { flag: 'wx' });
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = Number(await readFile(this.file('.lock'), 'utf8').catch(() => 'NaN'));
        if (holder === process.pid || isAlive(holder)) return false;
        await rm(this.file('.lock'), { force: true });
      }
    }
    return false;
  }

  async unlock(): Promise<void> {
    const holder = Number(await readFile(this.file('.lock'), 'utf8').catch(() => 'NaN'));
    if (holder === process.pid) await rm(this.file('.lock'), { force: true });
  }

  // --- the partial file of a build in progress ---------------------------------------------------

  /** Progress of an interrupted build; the partial file is cut back to its complete rows. */
  async readPartial(rows: number, columns: number, chunkSize: number): Promise<number> {
    const progressFile = this.file('.partial.json');
    if (!existsSync(progressFile) || !existsSync(this.file('.partial.f32'))) return 0;
    try {
      const progress = JSON.parse(await readFile(progressFile, 'utf8')) as PartialProgress;
      const compatible =
        progress.rows === rows && progress.columns === columns && progress.chunkSize === chunkSize;
      const size = (await stat(this.file('.partial.f32'))).size;
      if (!compatible || size < progress.done * columns * 4) return 0;
      // A chunk appended after the last progress record is dropped and redone.
      await truncate(this.file('.partial.f32'), progress.done * columns * 4);
      return progress.done;
    } catch {
      return 0;
    }
  }

  /** Writes the rows of a finished chunk at row `start` (flushed to disk), then records the progress. */
  async appendPartial(rowsData: Float32Array, start: number, progress: PartialProgress): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const file = this.file('.partial.f32');
    const handle = await open(file, start === 0 || !existsSync(file) ? 'w' : 'r+');
    try {
      const bytes = floatBytes(rowsData);
      await handle.write(bytes, 0, bytes.length, start * progress.columns * 4);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    const tmp = this.file(`.partial.json.tmp-${process.pid}`);
    await writeFile(tmp, JSON.stringify(progress));
    await rename(tmp, this.file('.partial.json'));
  }

  async readPartialRows(rows: number, columns: number): Promise<Float32Array> {
    const bytes = await readFile(this.file('.partial.f32'));
    if (bytes.length !== rows * columns * 4) {
      throw new Error(
        `${this.file('.partial.f32')} holds ${bytes.length} bytes; expected ${rows * columns * 4}`,
      );
    }
    return toFloats(bytes);
  }

  async removePartial(): Promise<void> {
    await rm(this.file('.partial.f32'), { force: true });
    await rm(this.file('.partial.json'), { force: true });
  }

  private fromParts(header: IndexHeader, bytes: Buffer): StoredIndex {
    const { rows, columns } = header;
    const fits =
      header.format === INDEX_FORMAT &&
      header.modelSha256 === this.modelSha256 &&
      header.vocabularySha256 === this.vocabularySha256 &&
      header.words.length === rows &&
      header.mean.length === columns &&
      bytes.length === rows * columns * 4;
    if (!fits) throw new Error(`word index ${this.name} does not match its header`);
    const index = new WordIndex(header.words, Float32Array.from(header.mean), toFloats(bytes));
    return { header, index };
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** The bytes of a Float32Array (little-endian, as every platform Node runs on). */
function floatBytes(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/** A Float32Array copy of bytes (copied so its buffer is aligned and owned). */
function toFloats(bytes: Buffer): Float32Array {
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}
