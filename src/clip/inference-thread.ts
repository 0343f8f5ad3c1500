/**
 * The thread that owns a model's onnxruntime sessions (its client: inference.ts). onnxruntime-node runs a
 * graph synchronously on the thread that calls it: here that is this thread, so the service's event
 * loop goes on parsing, tokenising and answering while a batch runs.
 */
import * as ort from 'onnxruntime-node';
import { serveRequests } from '../threads/serve.js';
import { ModelDirectoryError } from './model-directory.js';
import { createSession, type GraphSignature, type SessionOptions } from './onnx-session.js';

export type InferenceRequest =
  | {
      kind: 'load';
      graph: string;
      file: string;
      signature: GraphSignature;
      options: Omit<SessionOptions, 'warn'>;
      /** Model bytes instead of `file` (then `file` only names the graph in messages). */
      bytes?: Uint8Array;
    }
  | {
      kind: 'run';
      graph: string;
      input: { name: string; type: 'int64' | 'float32'; data: BigInt64Array | Float32Array; dims: number[] };
      output: string;
    }
  | { kind: 'release' };

export type InferenceReply =
  | { kind: 'loaded'; provider: SessionOptions['providers'][number]; warnings: string[] }
  | { kind: 'refused'; file: string; problem: string }
  | { kind: 'ran'; data: Float32Array }
  | { kind: 'released' };

const sessions = new Map<string, ort.InferenceSession>();

async function answer(request: InferenceRequest): Promise<InferenceReply> {
  switch (request.kind) {
    case 'load': {
      const warnings: string[] = [];
      const options = { ...request.options, warn: (message: string) => warnings.push(message) };
      try {
        const { session, provider } = await createSession(
          request.file,
          request.signature,
          options,
          request.bytes ?? request.file,
        );
        sessions.set(request.graph, session);
        return { kind: 'loaded', provider, warnings };
      } catch (error) {
        if (error instanceof ModelDirectoryError)
          return { kind: 'refused', file: error.file, problem: error.problem };
        throw error;
      }
    }
    case 'run': {
      const session = sessions.get(request.graph);
      if (!session) throw new Error(`no session for the ${request.graph} graph`);
      const { name, type, data, dims } = request.input;
      const outputs = await session.run({ [name]: new ort.Tensor(type, data, dims) });
      return { kind: 'ran', data: outputs[request.output].data as Float32Array };
    }
    case 'release':
      await Promise.all([...sessions.values()].map((session) => session.release()));
      sessions.clear();
      return { kind: 'released' };
  }
}

serveRequests(answer, (reply) => (reply.kind === 'ran' ? [reply.data.buffer as ArrayBuffer] : []));
