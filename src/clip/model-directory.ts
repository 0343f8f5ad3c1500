/**
 * A model directory, as written by `tools/export/export_clip.py`: three ONNX graphs, the bilinear
 * matrix W, the BPE merges, a neuron catalogue and `clip.json`, the manifest that describes them and
 * holds the sha256 of every file.
 *
 * Loading validates the manifest against its schema and every file against its hash; any problem
 * stops start-up with one message that names the file and the problem.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

const PositiveInt = Type.Integer({ minimum: 1 });

export const ManifestSchema = Type.Object({
  format_version: Type.Literal(1),
  name: Type.String({ minLength: 1 }),
  image_size: PositiveInt,
  mean: Type.Array(Type.Number(), { minItems: 3, maxItems: 3 }),
  std: Type.Array(Type.Number({ exclusiveMinimum: 0 }), { minItems: 3, maxItems: 3 }),
  context_length: PositiveInt,
  vocab_size: Type.Integer({ minimum: 515 }),
  embed_dim: PositiveInt,
  neuron_layer: Type.String(),
  neuron_count: PositiveInt,
  neuron_grid: Type.Array(PositiveInt, { minItems: 2, maxItems: 2 }),
  logit_scale: Type.Number({ exclusiveMinimum: 0 }),
  tokenizer: Type.Object({
    merges: Type.String({ minLength: 1 }),
    start_id: Type.Integer({ minimum: 0 }),
    end_id: Type.Integer({ minimum: 0 }),
  }),
  files: Type.Record(Type.String(), Type.String({ pattern: '^[0-9a-f]{64}$' })),
});

export type Manifest = Static<typeof ManifestSchema>;

/** The files every model directory holds besides the manifest (the merges file is named in it). */
export const MODEL_FILES = {
  textEncoder: 'text.onnx',
  visualTrunk: 'visual_trunk.onnx',
  visualHead: 'visual_head.onnx',
  bilinear: 'bilinear.f32',
  neuronCatalogue: 'neurons.json',
} as const;

/**
 * Optional files a model directory may carry (listed in clip.json's files when present): the word
 * vocabulary, and a probe collection of labelled images that the service installs as the collection
 * `probe` (src/collections/probe.ts).
 */
export const OPTIONAL_FILES = { vocabulary: 'words.txt', probeCollection: 'probe.tar.gz' } as const;

export class ModelDirectoryError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'ModelDirectoryError';
  }
}

export interface ModelDirectory {
  dir: string;
  manifest: Manifest;
  /** sha256 of clip.json: it names every file's hash, so it identifies the whole model. */
  sha256: string;
  path(file: string): string;
  /** W, row-major [neuron_count, embed_dim]. */
  bilinear: Float32Array;
}

export async function loadModelDirectory(dir: string): Promise<ModelDirectory> {
  const manifestPath = path.join(dir, 'clip.json');
  const manifestBytes = await readFile(manifestPath).catch((error: NodeJS.ErrnoException) => {
    const problem =
      error.code === 'ENOENT'
        ? 'not found (MODEL_DIR must be a directory written by tools/export/export_clip.py)'
        : `cannot be read (${error.code ?? error.message})`;
    throw new ModelDirectoryError(manifestPath, problem);
  });
  const manifest = parseManifest(manifestPath, manifestBytes);
  const required = [...Object.values(MODEL_FILES), manifest.tokenizer.merges];
  for (const file of required) {
    if (!(file in manifest.files)) {
      throw new ModelDirectoryError(manifestPath, `lists no sha256 for required file ${file}`);
    }
  }
  await Promise.all(
    Object.entries(manifest.files).map(([file, expected]) => verifyHash(path.join(dir, file), expected)),
  );
  const bilinear = await readBilinear(path.join(dir, MODEL_FILES.bilinear), manifest);
  return {
    dir,
    manifest,
    sha256: createHash('sha256').update(manifestBytes).digest('hex'),
    path: (file) => path.join(dir, file),
    bilinear,
  };
}

function parseManifest(manifestPath: string, bytes: Buffer): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new ModelDirectoryError(manifestPath, `is not valid JSON (${(error as Error).message})`);
  }
  if (!Value.Check(ManifestSchema, json)) {
    const first = Value.Errors(ManifestSchema, json).First();
    const where = first?.path || '/';
    throw new ModelDirectoryError(manifestPath, `field ${where} ${first?.message ?? 'is invalid'}`);
  }
  const manifest = json as Manifest;
  const { vocab_size: vocab, tokenizer } = manifest;
  if (tokenizer.start_id !== vocab - 2 || tokenizer.end_id !== vocab - 1) {
    throw new ModelDirectoryError(
      manifestPath,
      `tokenizer start/end ids must be ${vocab - 2}/${vocab - 1} for a vocabulary of ${vocab}`,
    );
  }
  return manifest;
}

async function verifyHash(file: string, expected: string): Promise<void> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ModelDirectoryError(file, code === 'ENOENT' ? 'missing' : `cannot be read (${code})`);
  }
  const actual = hash.digest('hex');
  if (actual !== expected) {
    throw new ModelDirectoryError(file, `sha256 ${actual} does not match clip.json (${expected})`);
  }
}

async function readBilinear(file: string, manifest: Manifest): Promise<Float32Array> {
  const expectedBytes = manifest.neuron_count * manifest.embed_dim * 4;
  const { size } = await stat(file);
  if (size !== expectedBytes) {
    throw new ModelDirectoryError(
      file,
      `holds ${size} bytes; expected ${expectedBytes} (float32 [${manifest.neuron_count}, ${manifest.embed_dim}])`,
    );
  }
  const bytes = await readFile(file);
  // Copy into a fresh, aligned buffer: Float32Array needs a 4-byte-aligned offset.
  const matrix = new Float32Array(expectedBytes / 4);
  new Uint8Array(matrix.buffer).set(bytes);
  return matrix;
}
