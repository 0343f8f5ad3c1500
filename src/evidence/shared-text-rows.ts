/**
 * The text-side index's rows shared by the processes of one DATA_DIR (the server and every worker),
 * and kept across restarts: the rows of the word list (the part of the index that does not depend
 * on a collection's categories) in chunk files that any process computes once, under a claim.
 *
 * Every process that labels neurons needs the whole index (about 20,000 words × 2 templates, some
 * 250 s of a core at RN50-x4 size), and before this each computed all of it: two workers on one
 * labelling job spent twice the CPU for 1.07× the speed of one. Here a process walks the chunks:
 * a written chunk is read, a free one is claimed (an O_EXCL lock file, stale when its holder is
 * gone or silent, as collection shards are) and computed, and one another process holds is left
 * for later, so the processes split the chunks between them and then read each other's.
 *
 * A chunk file, `<dir>/<model sha256>-<provider>-<key>/chunk-<i>.f32`: a JSON header line (the
 * model's sha256, the provider, the key of the word list and templates, the rows, C, D and the
 * sha256 of the payload), then the rows' attributions [rows, C] and embeddings [rows, D] as
 * little-endian float32, written atomically (writeAtomic: a temporary file, synced, renamed). A file is trusted only if
 * its header says all of that; anything else is computed again and rewritten. A process that
 * cannot write (a read-only or full disk) keeps what it computed and goes on.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import path from 'node:path';
import { FileLock } from '../collections/build-job.js';
import { writeAtomic } from '../collections/store.js';

const FORMAT = 'text-side-index-chunk';
const VERSION = 1;
/** How long a process waits before looking again at chunks other processes hold. */
const WAIT_MS = 200;

export interface SharedTextRowsOptions {
  /** DATA_DIR/text-index. */
  dir: string;
  /** The model's sha256 (its manifest's, which covers every file of the model directory). */
  model: string;
  /** The execution provider the rows were computed on (cpu, cuda). */
  provider: string;
  /** Rows per chunk file (default SHARED_CHUNK). */
  chunk?: number;
  /** Told when a chunk cannot be read or written (the rows are computed here instead). */
  warn?: (message: string) => void;
}

/** Rows per chunk file: 8 batches of 64, some 6 s of a core at RN50-x4 size. */
export const SHARED_CHUNK = 512;

interface ChunkHeader {
  format: string;
  version: number;
  model: string;
  provider: string;
  key: string;
  first: number;
  rows: number;
  neurons: number;
  embedDim: number;
  payloadSha256: string;
}

/** Where rows [first, first + rows) of the index go, and how to compute them. */
export interface RowTarget {
  neurons: number;
  embedDim: number;
  attributions: Float32Array;
  embeddings: Float32Array;
  compute(first: number, end: number, beat: () => Promise<void>): Promise<void>;
}

export class SharedTextRows {
  constructor(private readonly options: SharedTextRowsOptions) {}

  /**
   * Fills rows [0, rows) of the target, a chunk of rows per file: read where written, computed here
   * where free (and written), waited for where another process computes them.
   */
  async fill(key: string, rows: number, target: RowTarget): Promise<void> {
    const { model, provider } = this.options;
    const chunk = this.options.chunk ?? SHARED_CHUNK;
    const folder = path.join(this.options.dir, `${model}-${provider}-${key.slice(0, 32)}`);
    const usable =
      endianness() === 'LE' &&
      (await mkdir(folder, { recursive: true }).then(
        () => true,
        () => false,
      ));
    let pending = Array.from({ length: Math.ceil(rows / chunk) }, (_, i) => i);
    while (pending.length > 0) {
      const held: number[] = [];
      for (const i of pending) {
        const first = i * chunk;
        const end = Math.min(rows, first + chunk);
        const file = path.join(folder, `chunk-${i}.f32`);
        if (usable && (await this.read(file, key, first, end, target))) continue;
        const lock = new FileLock(`${file}.claim`);
        if (usable && !(await lock.tryTake().catch(() => true))) {
          held.push(i); // another process computes it
          continue;
        }
        try {
          await target.compute(first, end, () => lock.refresh());
          if (usable) await this.write(file, key, first, end, target);
        } finally {
          if (usable) await lock.release();
        }
      }
      if (held.length === pending.length) await new Promise((resolve) => setTimeout(resolve, WAIT_MS));
      pending = held;
    }
  }

  private header(
    key: string,
    first: number,
    end: number,
    target: RowTarget,
    payloadSha256: string,
  ): ChunkHeader {
    const { model, provider } = this.options;
    return {
      format: FORMAT,
      version: VERSION,
      model,
      provider,
      key,
      first,
      rows: end - first,
      neurons: target.neurons,
      embedDim: target.embedDim,
      payloadSha256,
    };
  }

  private payload(first: number, end: number, target: RowTarget): Buffer {
    const { neurons: C, embedDim: D } = target;
    const a = target.attributions.subarray(first * C, end * C);
    const e = target.embeddings.subarray(first * D, end * D);
    return Buffer.concat([
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(e.buffer, e.byteOffset, e.byteLength),
    ]);
  }

  private async write(
    file: string,
    key: string,
    first: number,
    end: number,
    target: RowTarget,
  ): Promise<void> {
    const payload = this.payload(first, end, target);
    const sha = createHash('sha256').update(payload).digest('hex');
    const head = Buffer.from(`${JSON.stringify(this.header(key, first, end, target, sha))}\n`);
    await writeAtomic(file, Buffer.concat([head, payload])).catch((error: unknown) =>
      this.options.warn?.(`the text-side index: could not write ${file} (${String(error)})`),
    );
  }

  /** True when the file holds rows [first, end) of this key, model and provider (then copied in). */
  private async read(
    file: string,
    key: string,
    first: number,
    end: number,
    target: RowTarget,
  ): Promise<boolean> {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      return false;
    }
    const newline = bytes.indexOf(10);
    const { neurons: C, embedDim: D } = target;
    const payload = bytes.subarray(newline + 1);
    try {
      if (newline < 0) throw new Error('it has no header line');
      const header = JSON.parse(bytes.subarray(0, newline).toString('utf8')) as ChunkHeader;
      const expected = this.header(key, first, end, target, header.payloadSha256);
      const same = (Object.keys(expected) as (keyof ChunkHeader)[]).every((k) => header[k] === expected[k]);
      if (
        !same ||
        payload.length !== (end - first) * (C + D) * 4 ||
        createHash('sha256').update(payload).digest('hex') !== header.payloadSha256
      ) {
        throw new Error('its header or payload does not match');
      }
    } catch (error) {
      this.options.warn?.(
        `the text-side index: ${file} is not usable (${String(error)}); computing its rows again`,
      );
      return false;
    }
    const floats = new Float32Array(
      payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.length),
    );
    const split = (end - first) * C;
    target.attributions.set(floats.subarray(0, split), first * C);
    target.embeddings.set(floats.subarray(split), first * D);
    return true;
  }
}
