/**
 * A maximal-text search request: its defaults and caps, its validation against the model, and the
 * normalised form whose hash (with the model's sha256) identifies identical requests.
 *
 * Caps (documented in the route schema): length 1–16 tokens, steps ≤ 2,000, batch ≤ 256
 * candidates per step, restarts ≤ 50, timeLimitS ≤ 600, fluency weight ≤ 1, startText ≤ 500
 * characters. One step costs one batched text-encoder run of `batch` rows.
 *
 * A search is bounded by its work (steps, restarts), so the same request gives the same text on a fast
 * and a slow machine. A wall-clock limit (`timeLimitS`) is opt-in: a search it stops depends on the
 * machine's speed, says so (stopReason "time") and is not cached as the request's answer.
 */
import { createHash } from 'node:crypto';
import { badRequest } from '../errors.js';

export const MAX_TEXT_DEFAULTS = {
  length: 6,
  steps: 200,
  batch: 64,
  restarts: 3,
  seed: 0,
  /** No wall-clock limit unless the client sets one. */
  timeLimitS: null,
  fluency: 0,
} as const;

export const MAX_TEXT_CAPS = {
  length: 16,
  steps: 2000,
  batch: 256,
  restarts: 50,
  timeLimitS: 600,
  fluency: 1,
  startTextChars: 500,
  seed: 2 ** 32 - 1,
} as const;

/** What a client may send (every field but neuron/direction optional). */
export interface MaxTextBody {
  neuron?: number;
  direction?: number[];
  length?: number;
  steps?: number;
  batch?: number;
  restarts?: number;
  seed?: number;
  timeLimitS?: number | null;
  startText?: string;
  fluency?: number;
}

/** A validated request with every default filled in; exactly one of neuron and direction. */
export interface MaxTextRequest {
  neuron: number | null;
  direction: number[] | null;
  length: number;
  steps: number;
  batch: number;
  restarts: number;
  seed: number;
  /** Seconds, or null: stopped by work only. */
  timeLimitS: number | null;
  startText: string | null;
  fluency: number;
}

function inRange(name: string, value: number, min: number, max: number, integer = true): number {
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    throw badRequest(
      `${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${value}`,
    );
  }
  return value;
}

/** Validates a body for a model with `neuronCount` neurons; throws 400 with a message. */
export function normaliseRequest(body: MaxTextBody, neuronCount: number): MaxTextRequest {
  const hasNeuron = body.neuron !== undefined && body.neuron !== null;
  const hasDirection = body.direction !== undefined && body.direction !== null;
  if (hasNeuron === hasDirection) throw badRequest('give exactly one of "neuron" and "direction"');
  let neuron: number | null = null;
  let direction: number[] | null = null;
  if (hasNeuron) {
    neuron = body.neuron!;
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= neuronCount) {
      throw badRequest(`neuron ${neuron} is out of range (0 to ${neuronCount - 1})`);
    }
  } else {
    direction = body.direction!;
    if (direction.length !== neuronCount) {
      throw badRequest(`direction has ${direction.length} entries; the model has ${neuronCount} neurons`);
    }
    if (!direction.every(Number.isFinite)) throw badRequest('direction must hold finite numbers only');
    if (direction.every((x) => x === 0)) throw badRequest('direction must not be all zeros');
  }
  const d = MAX_TEXT_DEFAULTS;
  const c = MAX_TEXT_CAPS;
  const startText = body.startText ?? null;
  if (startText !== null && (startText.trim() === '' || startText.length > c.startTextChars)) {
    throw badRequest(`startText must hold 1 to ${c.startTextChars} characters`);
  }
  return {
    neuron,
    direction,
    length: inRange('length', body.length ?? d.length, 1, c.length),
    steps: inRange('steps', body.steps ?? d.steps, 1, c.steps),
    batch: inRange('batch', body.batch ?? d.batch, 1, c.batch),
    restarts: inRange('restarts', body.restarts ?? d.restarts, 0, c.restarts),
    seed: inRange('seed', body.seed ?? d.seed, 0, c.seed),
    timeLimitS:
      body.timeLimitS === undefined || body.timeLimitS === null
        ? d.timeLimitS
        : inRange('timeLimitS', body.timeLimitS, 0.1, c.timeLimitS, false),
    startText,
    fluency: inRange('fluency', body.fluency ?? d.fluency, 0, c.fluency, false),
  };
}

/** The default-parameter request for one neuron (what GET /v1/neurons/{id}/max-text runs). */
export function defaultNeuronRequest(neuron: number, neuronCount: number): MaxTextRequest {
  return normaliseRequest({ neuron }, neuronCount);
}

/** SHA-256 (hex) of the model's sha256 and the normalised request, with keys in a fixed order. */
export function requestHash(modelSha256: string, request: MaxTextRequest): string {
  const ordered = [
    request.neuron,
    request.direction,
    request.length,
    request.steps,
    request.batch,
    request.restarts,
    request.seed,
    request.timeLimitS,
    request.startText,
    request.fluency,
  ];
  return createHash('sha256')
    .update(`max-text.v1\n${modelSha256}\n${JSON.stringify(ordered)}`)
    .digest('hex');
}

/** The key under which a direction's single-token scores are cached. */
export function directionKey(request: Pick<MaxTextRequest, 'neuron' | 'direction'>): string {
  if (request.neuron !== null) return `neuron-${request.neuron}`;
  return 'direction-' + createHash('sha256').update(JSON.stringify(request.direction)).digest('hex');
}
