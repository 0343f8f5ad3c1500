/**
 * A model's onnxruntime sessions and the runs on them. By default they live on a thread of their
 * own (inference-thread.ts): sessions are created there, inputs go there (their buffers moved, not
 * copied) and outputs come back. onnxruntime-node runs a graph synchronously on the calling thread;
 * run from the event loop, every batch would hold every other request for as long as it runs.
 * With `thread: false` (ORT_THREAD=false) the same SessionHost answers on the calling thread.
 */
import * as ort from 'onnxruntime-node';
import type { ExecutionProviderName } from '../config.js';
import { InProcess, type Runner } from '../threads/in-process.js';
import { siblingModule, WorkerPool } from '../threads/worker-pool.js';
import { ModelDirectoryError } from './model-directory.js';
import { createSession, type GraphSignature, type SessionOptions } from './onnx-session.js';

export interface GraphInput {
  name: string;
  type: 'int64' | 'float32';
  data: BigInt64Array | Float32Array;
  dims: number[];
}

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
  | { kind: 'run'; graph: string; input: GraphInput; output: string; chain?: ChainedRun }
  | { kind: 'release' };

/** A second graph fed with the first one's output, in the same trip to the thread. */
export interface ChainedRun {
  graph: string;
  /** The second graph's input name: it receives the first graph's output, shape and all. */
  input: string;
  output: string;
}

export type InferenceReply =
  | { kind: 'loaded'; provider: ExecutionProviderName; warnings: string[] }
  | { kind: 'refused'; file: string; problem: string }
  /** `chained`: the chained graph's output; `ms`: each graph's run time on the thread. */
  | { kind: 'ran'; data: Float32Array; chained?: Float32Array; ms: number[] }
  | { kind: 'released' };

/** Holds the sessions, by graph name, and answers requests about them. */
export class SessionHost {
  private readonly sessions = new Map<string, ort.InferenceSession>();

  async answer(request: InferenceRequest): Promise<InferenceReply> {
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
          this.sessions.set(request.graph, session);
          return { kind: 'loaded', provider, warnings };
        } catch (error) {
          // The error's class does not cross threads: its parts do.
          if (error instanceof ModelDirectoryError)
            return { kind: 'refused', file: error.file, problem: error.problem };
          throw error;
        }
      }
      case 'run': {
        const session = this.sessions.get(request.graph);
        if (!session) throw new Error(`no session for the ${request.graph} graph`);
        const { name, type, data, dims } = request.input;
        const started = performance.now();
        const first = (await session.run({ [name]: new ort.Tensor(type, data, dims) }))[request.output];
        const ms = [performance.now() - started];
        const chained = request.chain;
        if (!chained) return { kind: 'ran', data: first.data as Float32Array, ms };
        const next = this.sessions.get(chained.graph);
        if (!next) throw new Error(`no session for the ${chained.graph} graph`);
        const secondStarted = performance.now();
        const second = (await next.run({ [chained.input]: first }))[chained.output];
        ms.push(performance.now() - secondStarted);
        return { kind: 'ran', data: first.data as Float32Array, chained: second.data as Float32Array, ms };
      }
      case 'release':
        await Promise.all([...this.sessions.values()].map((session) => session.release()));
        this.sessions.clear();
        return { kind: 'released' };
    }
  }
}

export class Inference {
  private readonly runner: Runner<InferenceRequest, InferenceReply>;
  /** The sessions loaded so far: a thread that replaces a dead one loads them again first. */
  private readonly loads: InferenceRequest[] = [];

  constructor({ thread = true }: { thread?: boolean } = {}) {
    if (thread) {
      const module = siblingModule(import.meta.url, 'inference-thread');
      this.runner = new WorkerPool(module, 1, () => this.loads);
    } else {
      const host = new SessionHost();
      this.runner = new InProcess((request) => host.answer(request));
    }
  }

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
    const request: InferenceRequest = { kind: 'load', graph, file, signature, options: rest, bytes };
    const reply = await this.runner.run(request);
    if (reply.kind === 'refused') throw new ModelDirectoryError(reply.file, reply.problem);
    if (reply.kind !== 'loaded') throw new Error(`unexpected reply ${reply.kind} to a load`);
    reply.warnings.forEach(warn);
    // Again on a new thread: straight to the provider that worked.
    this.loads.push({ ...request, options: { ...rest, providers: [reply.provider] } });
    return reply.provider;
  }

  /**
   * Runs `graph` on one input (its buffer is moved to the thread) and returns the named output and
   * the run's time on the thread; with `chain`, also feeds that output to a second graph in the same
   * trip and returns its output too.
   */
  async run(
    graph: string,
    input: GraphInput,
    output: string,
    chain?: ChainedRun,
  ): Promise<Extract<InferenceReply, { kind: 'ran' }>> {
    const transfer = [input.data.buffer as ArrayBuffer];
    const reply = await this.runner.run({ kind: 'run', graph, input, output, chain }, transfer);
    if (reply.kind !== 'ran') throw new Error(`unexpected reply ${reply.kind} to a run`);
    return reply;
  }

  /** Releases every session (after the runs already asked for) and stops the thread. */
  async release(): Promise<void> {
    await this.runner.run({ kind: 'release' }).catch(() => undefined);
    await this.runner.close();
  }
}
