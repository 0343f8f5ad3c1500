/**
 * The service's public API, through a client generated from openapi/openapi.json
 * (`npm run web:types` writes ./openapi.d.ts; openapi-fetch checks every path, parameter and body
 * against it at compile time). Failed calls throw an ApiError carrying the API's own `message`.
 */
import createClient from 'openapi-fetch';
import type { paths } from './openapi';

export type { paths };

// JSON only: the vector routes also answer binary forms (application/x-npy, application/octet-stream)
// when asked with Accept; the page never asks, and data is typed as the JSON answer.
export const api = createClient<paths, 'application/json'>({ baseUrl: window.location.origin });

const KEY_STORAGE = 'multimodal-neurons:api-key';
/** The key when session storage is refused (private modes): it lasts until the page is left. */
let memoryKey = '';

/** The API key the user gave for this tab (services with API_KEYS set need one), or ''. */
export function apiKey(): string {
  try {
    return window.sessionStorage.getItem(KEY_STORAGE) ?? memoryKey;
  } catch {
    return memoryKey;
  }
}

export function setApiKey(key: string): void {
  memoryKey = key;
  try {
    if (key) window.sessionStorage.setItem(KEY_STORAGE, key);
    else window.sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // memoryKey holds it.
  }
}

api.use({
  onRequest({ request }) {
    const key = apiKey();
    if (key) request.headers.set('authorization', `Bearer ${key}`);
    return request;
  },
});

/** The JSON body of a 200 response of `method` on `path`. */
export type Ok<P extends keyof paths, M extends 'get' | 'post' | 'delete'> = paths[P][M] extends {
  responses: { 200: { content: { 'application/json': infer T } } };
}
  ? T
  : never;

/** A job of any kind (max-text search, collection build, …): progress and result by kind. */
export type AnyJob = Ok<'/v1/jobs/{id}', 'get'>;
/** A maximal-text search's progress and result (the job kind "max-text"). */
export type JobProgress = Extract<AnyJob['progress'], { bestText: unknown }>;
export type SearchResult = Extract<NonNullable<AnyJob['result']>, { curve: unknown }>;
/** A maximal-text search job, as GET /v1/jobs/{id} and its events describe it. */
export type Job = Omit<AnyJob, 'progress' | 'result'> & { progress: JobProgress; result?: SearchResult };
/** A collection build's progress (the job kind "collection-build"). */
export type BuildProgress = Extract<AnyJob['progress'], { imagesPerSecond: unknown }>;

/** A call the API answered with an error status (or that never reached it). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

function messageOf(error: unknown, response: Response): string {
  if (error !== null && typeof error === 'object' && 'message' in error) {
    const { message } = error as { message: unknown };
    if (typeof message === 'string' && message !== '') return message;
  }
  if (typeof error === 'string' && error.trim() !== '') return error.trim().slice(0, 300);
  return `${response.status} ${response.statusText || 'error'}`.trim();
}

/** The data of an openapi-fetch call, or an ApiError with the API's message. */
export async function call<T>(
  request: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<NonNullable<T>> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await request;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ApiError(`the service could not be reached (${reason})`, 0);
  }
  const { data, error, response } = result;
  if (!response.ok || data === undefined || data === null) {
    throw new ApiError(messageOf(error, response), response.status);
  }
  return data as NonNullable<T>;
}

/**
 * The path of a job's Server-Sent Events stream. EventSource cannot go through fetch nor send an
 * Authorization header: with an API key the page polls GET /v1/jobs/{id} instead.
 */
export function jobEventsUrl(id: string): string {
  const path: keyof paths = '/v1/jobs/{id}/events';
  return path.replace('{id}', encodeURIComponent(id));
}
