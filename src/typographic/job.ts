/**
 * A large typographic attack as a job of the one job API (kind `typographic-attack`, src/jobs/):
 * the request as submitted (images as base64, the lexical set resolved by the server that took it),
 * run in chunks of TYPOGRAPHIC_LIMITS.maxImages images with progress after each and a check for
 * cancellation between them; the result is the one the route would give for all the images at once.
 */
import { createHash } from 'node:crypto';
import type { LexicalSet } from '../attribution/lexical-neurons.js';
import type { JobContext, JobOutcome } from '../jobs/types.js';
import type { Rgb } from './colour.js';
import type { PasteOptions } from './paste.js';
import {
  attackSummary,
  TYPOGRAPHIC_LIMITS,
  type AttackedImage,
  type AttackRequest,
  type AttackResult,
  type TypographicService,
} from './service.js';

/** The request of a job: JSON (images as base64). */
export interface SerializedAttack {
  images: string[];
  trueLabels?: string[];
  labels: string[];
  templates: string[];
  paste: Omit<PasteOptions, 'colour' | 'box'> & { colour: number[]; box?: number[] };
  target?: string;
  ablate?: number[] | 'lexical';
  lexical?: LexicalSet;
  explain: number;
  returnImages: boolean;
}

export interface AttackJobData {
  kind: 'typographic-attack';
  /** Identical requests share one job. */
  hash: string;
  request: SerializedAttack;
}

export interface AttackProgress {
  /** Images attacked so far. */
  done: number;
  total: number;
}

export type AttackJobResult = AttackResult;

/** Most images of one attack job. */
export const MAX_ATTACK_JOB_IMAGES = 4096;

export function attackJobData(request: SerializedAttack): AttackJobData {
  const hash = createHash('sha256').update(JSON.stringify(request)).digest('hex');
  return { kind: 'typographic-attack', hash, request };
}

function attackRequest(request: SerializedAttack, images: string[], trueLabels?: string[]): AttackRequest {
  const { paste } = request;
  return {
    ...request,
    images: images.map((image) => Buffer.from(image, 'base64')),
    trueLabels,
    paste: {
      ...paste,
      colour: paste.colour as unknown as Rgb,
      box: paste.box as unknown as Rgb | undefined,
    },
  };
}

/** The processor of `typographic-attack` jobs on a service. */
export function attackProcessor(service: TypographicService) {
  return async (
    data: AttackJobData,
    context: JobContext<AttackProgress>,
  ): Promise<JobOutcome<AttackJobResult>> => {
    const { request } = data;
    const total = request.images.length;
    const chunk = TYPOGRAPHIC_LIMITS.maxImages;
    const rows: AttackedImage[] = [];
    let last: AttackResult | undefined;
    let ablated: AttackResult['defence'];
    await context.reportProgress({ done: 0, total });
    for (let start = 0; start < total; start += chunk) {
      if (await context.isCancelled()) return { cancelled: true };
      const end = Math.min(total, start + chunk);
      last = await service.attack(
        attackRequest(request, request.images.slice(start, end), request.trueLabels?.slice(start, end)),
      );
      rows.push(...last.images);
      ablated ??= last.defence;
      await context.reportProgress({ done: end, total });
    }
    if (!last) return { cancelled: false };
    return {
      cancelled: false,
      result: attackSummary(last.text, last.target, last.labels, last.templates, rows, request.trueLabels, {
        ablate: ablated && { count: ablated.ablated, lexical: ablated.lexical },
        lexical: last.lexical,
      }),
    };
  };
}
