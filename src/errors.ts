/**
 * Errors that carry an HTTP status. Anything thrown with a 4xx status reaches the client with its
 * message; everything else is logged and answered as a bare 500 (see src/app.ts).
 */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const badRequest = (message: string) => new HttpError(400, message);
export const notFound = (message: string) => new HttpError(404, message);
export const conflict = (message: string) => new HttpError(409, message);
export const payloadTooLarge = (message: string) => new HttpError(413, message);
export const unsupportedMediaType = (message: string) => new HttpError(415, message);
export const serviceUnavailable = (message: string) => new HttpError(503, message);

/** A refusal the client should retry later: answered with `Retry-After: <retryAfterS>` (src/app.ts). */
export class RetryLaterError extends HttpError {
  constructor(
    statusCode: 429 | 503,
    message: string,
    readonly retryAfterS: number,
  ) {
    super(statusCode, message);
    this.name = 'RetryLaterError';
  }
}
