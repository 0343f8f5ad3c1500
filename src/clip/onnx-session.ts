/**
 * onnxruntime sessions for the three graphs of a model directory (and the in-memory W·t graph).
 *
 * Execution providers are tried in the configured order (default cuda, then cpu): when CUDA cannot
 * be loaded the session falls back to the next provider with one warning. Each graph's input and
 * output names, element types and fixed dimensions are checked against what the manifest promises.
 */
import * as ort from 'onnxruntime-node';
import type { ExecutionProviderName } from '../config.js';
import { ModelDirectoryError } from './model-directory.js';

// onnxruntime's own logger prints a multi-line error when the CUDA library is absent; failures reach
// us as exceptions anyway, and are reported once, in one line. Set before the first session exists.
ort.env.logLevel = 'fatal';

export interface SessionOptions {
  providers: readonly ExecutionProviderName[];
  intraOpThreads: number;
  interOpThreads: number;
  warn: (message: string) => void;
}

/** The expected signature of one graph: a dimension is a number (fixed) or null (dynamic). */
export interface GraphSignature {
  input: { name: string; type: 'float32' | 'int64'; shape: (number | null)[] };
  output: { name: string; type: 'float32'; shape: (number | null)[] };
}

export interface LoadedSession {
  session: ort.InferenceSession;
  provider: ExecutionProviderName;
}

/**
 * A session for the graph in `file`, or for the model bytes `source` (then `file` only names it in
 * messages).
 */
export async function createSession(
  file: string,
  signature: GraphSignature,
  options: SessionOptions,
  source: string | Uint8Array = file,
): Promise<LoadedSession> {
  const candidates = [...options.providers];
  let lastError: unknown;
  while (candidates.length > 0) {
    const provider = candidates[0];
    try {
      const sessionOptions: ort.InferenceSession.SessionOptions = {
        executionProviders: candidates,
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
        ...(options.intraOpThreads > 0 ? { intraOpNumThreads: options.intraOpThreads } : {}),
        ...(options.interOpThreads > 0 ? { interOpNumThreads: options.interOpThreads } : {}),
        // Provider load failures are reported once by us, not by onnxruntime's own logger.
        logSeverityLevel: candidates.length > 1 ? 4 : 2,
      };
      // Two overloads of create (path, bytes): TypeScript picks one only for a narrowed type.
      const session =
        typeof source === 'string'
          ? await ort.InferenceSession.create(source, sessionOptions)
          : await ort.InferenceSession.create(source, sessionOptions);
      checkSignature(file, session, signature);
      return { session, provider };
    } catch (error) {
      if (error instanceof ModelDirectoryError) throw error;
      lastError = error;
      candidates.shift();
      if (candidates.length > 0) {
        options.warn(
          `execution provider ${provider} is unavailable (${firstLine(error)}); falling back to ${candidates[0]}`,
        );
      }
    }
  }
  throw new ModelDirectoryError(file, `cannot be loaded by onnxruntime (${firstLine(lastError)})`);
}

function checkSignature(file: string, session: ort.InferenceSession, signature: GraphSignature): void {
  const check = (
    kind: 'input' | 'output',
    names: readonly string[],
    metadata: readonly ort.InferenceSession.ValueMetadata[],
  ) => {
    const expected = signature[kind];
    if (names.length !== 1 || names[0] !== expected.name) {
      throw new ModelDirectoryError(file, `${kind}s are [${names.join(', ')}]; expected [${expected.name}]`);
    }
    const meta = metadata[0];
    if (!meta.isTensor) throw new ModelDirectoryError(file, `${kind} ${expected.name} is not a tensor`);
    const shape = meta.shape;
    const fits =
      meta.type === expected.type &&
      shape.length === expected.shape.length &&
      expected.shape.every((dim, i) => dim === null || shape[i] === dim);
    if (!fits) {
      const want = expected.shape.map((dim) => dim ?? '?').join(',');
      throw new ModelDirectoryError(
        file,
        `${kind} ${expected.name} is ${meta.type}[${shape.join(',')}]; expected ${expected.type}[${want}]`,
      );
    }
  };
  check('input', session.inputNames, session.inputMetadata);
  check('output', session.outputNames, session.outputMetadata);
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0].trim();
}
