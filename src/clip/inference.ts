/**
 * A model's onnxruntime sessions, on a thread of their own (inference-thread.ts): sessions are
 * created there, inputs go there (their buffers moved, not copied) and outputs come back.
 * onnxruntime-node runs a graph synchronously on the calling thread; run from the event loop, every
 * batch would hold every other request for as long as it runs.
 */
import type { ExecutionProviderName } from '../config.js';
import { siblingModule, WorkerPool } from '../threads/worker-pool.js';
import type { InferenceReply, InferenceRequest } from './inference-thread.js';
import { ModelDirectoryError } from './model-directory.js';
import type { GraphSignature, SessionOptions } from './onnx-session.js';

export type GraphInput = Extract<InferenceRequest, { kind: 'run' }>['input'];

export class InferenceThread {
  private readonly thread = new WorkerPool<InferenceRequest, InferenceReply>(
    siblingModule(import.meta.url, 'inference-thread'),
    1,
  );

  /**
   * Creates the session of `graph` from `file` (or from `bytes`, then `file` only names it) and
   * returns the execution provider it runs on; provider fallbacks are reported through `options.warn`.
   */
  async load(
    graph: string,
    file: string,
    signature: GraphSignature,
    options: SessionOptions,
    bytes?: Uint8Array,
  ): Promise<ExecutionProviderName> {
    const { warn, ...rest } = options;
    const reply = await this.thread.run({ kind: 'load', graph, file, signature, options: rest, bytes });
    if (reply.kind === 'refused') throw new ModelDirectoryError(reply.file, reply.problem);
    if (reply.kind !== 'loaded') throw new Error(`unexpected reply ${reply.kind} to a load`);
    reply.warnings.forEach(warn);
    return reply.provider;
  }

  /** Runs `graph` on one input (its buffer is moved to the thread) and returns the named output. */
  async run(graph: string, input: GraphInput, output: string): Promise<Float32Array> {
    const reply = await this.thread.run({ kind: 'run', graph, input, output }, [
      input.data.buffer as ArrayBuffer,
    ]);
    if (reply.kind !== 'ran') throw new Error(`unexpected reply ${reply.kind} to a run`);
    return reply.data;
  }

  /** Releases every session and stops the thread. */
  async release(): Promise<void> {
    await this.thread.run({ kind: 'release' }).catch(() => undefined);
    await this.thread.close();
  }
}
