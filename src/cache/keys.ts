/**
 * Cache keys: `<model sha256>:<operation>:<part>:<part>…`. The model hash keeps models apart and the
 * operation keeps results of different kinds apart; version an operation's name (e.g. `embed.v2`)
 * when the format of what it caches changes. Parts that are short and made of safe characters are
 * kept readable; any other part (long, empty, or with other characters) is replaced by `#` and its
 * SHA-256, so keys stay short and never contain a separator. Parts never collide with one another:
 * a readable part cannot contain `:` or start with `#`. Numbers are written with String(), so the
 * number 3 and the string '3' give the same key, as do 0 and -0.
 */
import { createHash } from 'node:crypto';

const SHA256_HEX = /^[0-9a-f]{64}$/;
const OPERATION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const READABLE_PART = /^[A-Za-z0-9._-]{1,64}$/;

export function cacheKey(modelSha256: string, operation: string, ...parts: (string | number)[]): string {
  return cacheKeyPrefix(modelSha256, operation) + parts.map(encodePart).join(':');
}

/**
 * The prefix shared by every key of a model, or of one operation on a model: what to pass to
 * `BinaryCache.flush` to forget them.
 */
export function cacheKeyPrefix(modelSha256: string, operation?: string): string {
  const model = modelSha256.toLowerCase();
  if (!SHA256_HEX.test(model)) {
    throw new TypeError(`cache keys need the model's SHA-256 as 64 hex digits, got "${modelSha256}"`);
  }
  if (operation === undefined) return `${model}:`;
  if (!OPERATION.test(operation)) {
    throw new TypeError(`cache key operation must be 1-64 of [A-Za-z0-9._-], got "${operation}"`);
  }
  return `${model}:${operation}:`;
}

function encodePart(part: string | number): string {
  const text = String(part);
  if (READABLE_PART.test(text)) return text;
  return '#' + createHash('sha256').update(text, 'utf8').digest('base64url');
}
