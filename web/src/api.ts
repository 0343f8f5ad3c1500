/**
 * The service's public API, through a client generated from openapi/openapi.json
 * (`npm run web:types` writes ./openapi.d.ts; openapi-fetch checks every path, parameter and body
 * against it at compile time). Failed calls throw an ApiError carrying the API's own `message`.
 */
import createClient from 'openapi-fetch';
import type { paths } from './openapi';

export type { paths };

export const api = createClient<paths>({ baseUrl: window.location.origin });

/** The JSON body of a 200 response of `method` on `path`. */
export type Ok<P extends keyof paths, M extends 'get' | 'post' | 'delete'> = paths[P][M] extends {
  responses: { 200: { content: { 'application/json': infer T } } };
}
  ? T
  : never;

export type Job = Ok<'/v1/jobs/{id}', 'get'>;
export type JobProgress = Job['progress'];
export type SearchResult = NonNullable<Job['result']>;

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

/** The path of a job's Server-Sent Events stream (EventSource cannot go through fetch). */
export function jobEventsUrl(id: string): string {
  const path: keyof paths = '/v1/jobs/{id}/events';
  return path.replace('{id}', encodeURIComponent(id));
}
