/**
 * A large typographic attack as a job of the one job API (kind `typographic-attack`, src/jobs/):
 * the request as submitted (images as base64, the lexical set resolved by the server that took it),
 * run in chunks of TYPOGRAPHIC_LIMITS.maxImages images with progress after each and a check for
 * cancellation between them; the result is the one the route would give for all the images at once.
 * An attack on a collection's images carries references (collection-sample.ts), whose originals the
 * processor reads chunk by chunk.
 */
import { createHash } from 'node:crypto';
import type { LexicalSet } from '../attribution/lexical-neurons.js';
import type { JobContext, JobOutcome } from '../jobs/types.js';
import type { CollectionImage } from './collection-sample.js';
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

/** The request of a job: JSON (images as base64, or references to a collection's images). */
export interface SerializedAttack {
  images?: string[];
  collection?: { id: string; images: CollectionImage[] };
  trueLabels?: (string | null)[];
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

/** Reads an original of a collection (CollectionStore.readImage). */
export type ReadCollectionImage = (collection: string, sha256: string) => Promise<Uint8Array>;

function attackRequest(
  request: SerializedAttack,
  images: Uint8Array[],
  trueLabels?: (string | null)[],
): AttackRequest {
  const { paste } = request;
  return {
    ...request,
    images,
    trueLabels,
    paste: {
      ...paste,
      colour: paste.colour as unknown as Rgb,
      box: paste.box as unknown as Rgb | undefined,
    },
  };
}

/** The rows of an attack on a collection's images name each image (its id and category). */
export function withCollectionImages(
  rows: AttackedImage[],
  images: readonly CollectionImage[],
): AttackedImage[] {
  return rows.map((row, i) => ({ imageId: images[i].imageId, category: images[i].category, ...row }));
}

/** The processor of `typographic-attack` jobs on a service. */
export function attackProcessor(service: TypographicService, readImage?: ReadCollectionImage) {
  return async (
    data: AttackJobData,
    context: JobContext<AttackProgress>,
  ): Promise<JobOutcome<AttackJobResult>> => {
    const { request } = data;
    const { collection } = request;
    const total = collection ? collection.images.length : (request.images ?? []).length;
    const bytesOf = async (start: number, end: number): Promise<Uint8Array[]> => {
      if (!collection) return request.images!.slice(start, end).map((image) => Buffer.from(image, 'base64'));
      if (!readImage) throw new Error('this process cannot read collections: no collection store');
      return Promise.all(
        collection.images.slice(start, end).map((image) => readImage(collection.id, image.sha256)),
      );
    };
    const chunk = TYPOGRAPHIC_LIMITS.maxImages;
    const rows: AttackedImage[] = [];
    let last: AttackResult | undefined;
    let ablated: AttackResult['defence'];
    await context.reportProgress({ done: 0, total });
    for (let start = 0; start < total; start += chunk) {
      if (await context.isCancelled()) return { cancelled: true };
      const end = Math.min(total, start + chunk);
      last = await service.attack(
        attackRequest(request, await bytesOf(start, end), request.trueLabels?.slice(start, end)),
      );
      rows.push(
        ...(collection
          ? withCollectionImages(last.images, collection.images.slice(start, end))
          : last.images),
      );
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
