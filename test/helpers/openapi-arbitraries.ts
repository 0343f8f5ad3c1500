/**
 * fast-check arbitraries generated from an OpenAPI 3.0 document: for every operation, requests
 * whose body, query and path parameters follow the schema, and requests that break it (wrong
 * types, missing or extra fields, out-of-range values, hostile strings, prototype-pollution keys,
 * nested junk, garbage JSON, wrong content types, multipart uploads with garbage images).
 *
 * Valid values are kept small (short arrays and strings) so that a fuzz run stays cheap; the
 * invalid ones go past every bound.
 */
import fc from 'fast-check';

export type Schema = {
  $ref?: string;
  type?: string;
  enum?: unknown[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number | boolean;
  exclusiveMaximum?: number | boolean;
  description?: string;
  nullable?: boolean;
};

export interface Parameter {
  name: string;
  in: 'query' | 'path' | 'header' | 'cookie';
  required?: boolean;
  schema: Schema;
}

export interface Operation {
  method: string;
  /** The OpenAPI path, e.g. /v1/neurons/{id}. */
  path: string;
  parameters: Parameter[];
  body?: Schema;
  bodyRequired: boolean;
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, { parameters?: Parameter[]; requestBody?: RequestBody }>>;
  components?: { schemas?: Record<string, Schema> };
}

interface RequestBody {
  required?: boolean;
  content?: Record<string, { schema?: Schema }>;
}

/** A request ready for `app.inject`. */
export interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string | Buffer;
  /** What the generator meant: a schema-valid request, or one that breaks it. */
  kind: 'valid' | 'invalid';
}

const HTTP_METHODS = ['get', 'post', 'put', 'patch', 'delete'];

export function operations(doc: OpenApiDocument): Operation[] {
  const result: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!HTTP_METHODS.includes(method)) continue;
      const json = op.requestBody?.content?.['application/json']?.schema;
      result.push({
        method: method.toUpperCase(),
        path,
        parameters: (op.parameters ?? []).map((p) => ({ ...p, schema: deref(doc, p.schema) })),
        body: json ? deref(doc, json) : undefined,
        bodyRequired: op.requestBody?.required === true,
      });
    }
  }
  return result;
}

export function deref(doc: OpenApiDocument, schema: Schema): Schema {
  if (!schema.$ref) return schema;
  const name = schema.$ref.replace(/^#\/components\/schemas\//, '');
  const target = doc.components?.schemas?.[name];
  if (!target) throw new Error(`unresolved $ref ${schema.$ref}`);
  return deref(doc, target);
}

// ---------------------------------------------------------------------------------------------
// Hostile pieces

const PROTO_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  '__defineGetter__',
  'hasOwnProperty',
  'toString',
];

const controlChars = fc
  .array(fc.integer({ min: 0, max: 31 }), { minLength: 1, maxLength: 20 })
  .map((codes) => String.fromCharCode(...codes));

/** Strings that have broken services before. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '\ud800',
    '\udfff\ud800',
    '\u202e\u0633\u0644\u0627\u0645',
    '🙂'.repeat(300),
    'Z\u0351\u0352\u0353\u0354'.repeat(100),
    '../../../../etc/passwd',
    '%00%2e%2e%2f',
    '%s%s%s%n',
    '${process.exit(1)}',
    '{{7*7}}',
    '<script>alert(1)</script>',
    "' OR 1=1 --",
    'NaN',
    'Infinity',
    '-0',
    '1e309',
    'true',
    'null',
    '[]',
    '{}',
    ...PROTO_KEYS,
    '{}'.repeat(2000),
    'a{}b{}c{}',
  ),
  controlChars,
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.integer({ min: 2001, max: 300_000 }).map((n) => 'x'.repeat(n)),
  fc.integer({ min: 1, max: 50_000 }).map((n) => '\u00e9\u4e2d\u{1f600}'.repeat(n)),
);

/** Any JSON value, nested, with hostile strings and keys. */
export const junk: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, -1, 1.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2),
    hostileString,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.oneof(fc.constantFrom(...PROTO_KEYS), fc.string({ maxLength: 10 })), tie('value'), {
      maxKeys: 5,
    }),
  ),
})).value;

/** An object literal with an own `__proto__` (or other prototype) key, as JSON.parse makes it. */
function withOwnKey(base: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(base)) Object.defineProperty(copy, k, { value: v, enumerable: true });
  Object.defineProperty(copy, key, { value, enumerable: true, configurable: true, writable: true });
  return copy;
}

// ---------------------------------------------------------------------------------------------
// Images

/** A small image, valid or not, as raw bytes. */
export function imageBytes(validPngs: readonly Buffer[]): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...validPngs) },
    fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
    // A PNG with its tail cut off or bytes flipped.
    fc
      .tuple(fc.constantFrom(...validPngs), fc.nat(), fc.integer({ min: 0, max: 255 }))
      .map(([png, at, byte]) => {
        const copy = Buffer.from(png);
        copy[at % copy.length] = byte;
        return copy;
      }),
    fc.tuple(fc.constantFrom(...validPngs), fc.nat()).map(([png, n]) => png.subarray(0, n % png.length)),
    // A PNG header that claims an enormous image.
    fc.constant(pngHeaderClaiming(100_000, 100_000)),
  );
}

function pngHeaderClaiming(width: number, height: number): Buffer {
  const header = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
  const size = Buffer.alloc(8);
  size.writeUInt32BE(width, 0);
  size.writeUInt32BE(height, 4);
  return Buffer.concat([header, size, Buffer.from('0806000000', 'hex'), Buffer.alloc(4)]);
}

const isImageField = (name: string, schema: Schema) =>
  name === 'image' && schema.type === 'string' && /base64/i.test(schema.description ?? '');

// ---------------------------------------------------------------------------------------------
// Values from schemas

export interface GenerateOptions {
  doc: OpenApiDocument;
  validPngs: readonly Buffer[];
  /** Longest array of a valid value (default 3). */
  maxItems?: number;
  /** Longest string of a valid value (default 40). */
  maxLength?: number;
}

export function validValue(schema: Schema, options: GenerateOptions, name = ''): fc.Arbitrary<unknown> {
  const s = deref(options.doc, schema);
  const maxItems = options.maxItems ?? 3;
  const maxLength = options.maxLength ?? 40;
  if (s.enum) return fc.constantFrom(...s.enum);
  if (s.anyOf ?? s.oneOf)
    return fc.oneof(...(s.anyOf ?? s.oneOf)!.map((sub) => validValue(sub, options, name)));
  if (s.allOf)
    return validValue(Object.assign({}, ...s.allOf.map((sub) => deref(options.doc, sub))), options, name);
  switch (s.type) {
    case 'string': {
      if (isImageField(name, s)) {
        return fc
          .tuple(imageBytes(options.validPngs), fc.boolean())
          .map(([bytes, dataUrl]) => (dataUrl ? 'data:image/png;base64,' : '') + bytes.toString('base64'));
      }
      const min = s.minLength ?? 0;
      const max = Math.max(min, Math.min(s.maxLength ?? maxLength, maxLength));
      if (s.pattern) {
        const pattern = new RegExp(s.pattern);
        return fc
          .oneof(
            fc.stringMatching(pattern, { size: 'xsmall' }),
            fc.string({ minLength: min, maxLength: max }),
          )
          .filter((v) => v.length >= min && v.length <= (s.maxLength ?? Infinity) && pattern.test(v));
      }
      return fc.oneof(
        { weight: 4, arbitrary: fc.string({ minLength: min, maxLength: max }) },
        fc.string({ unit: 'grapheme', minLength: min, maxLength: max }).filter((v) => v.length <= max),
        hostileString.filter((v) => v.length >= min && v.length <= (s.maxLength ?? 2000)),
      );
    }
    case 'integer': {
      const min = bound(s.minimum, s.exclusiveMinimum, 1) ?? -1000;
      const max = bound(s.maximum, s.exclusiveMaximum, -1) ?? min + 2000;
      return fc.integer({ min: Math.ceil(min), max: Math.floor(Math.min(max, min + 1e6)) });
    }
    case 'number': {
      const min = s.minimum ?? -1000;
      const max = s.maximum ?? min + 2000;
      return fc
        .double({ min, max, noNaN: true, noDefaultInfinity: true })
        .filter(
          (v) =>
            !(
              s.exclusiveMinimum !== undefined &&
              v <= (typeof s.exclusiveMinimum === 'number' ? s.exclusiveMinimum : min)
            ) &&
            !(
              s.exclusiveMaximum !== undefined &&
              v >= (typeof s.exclusiveMaximum === 'number' ? s.exclusiveMaximum : max)
            ),
        )
        .map((v) => (Object.is(v, -0) ? 0 : v));
    }
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      const min = s.minItems ?? 0;
      const max = Math.max(min, Math.min(s.maxItems ?? maxItems, maxItems));
      return fc.array(validValue(s.items ?? {}, options, name), { minLength: min, maxLength: max });
    }
    case 'object': {
      const props = s.properties ?? {};
      const required = new Set(s.required ?? []);
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [key, sub] of Object.entries(props)) model[key] = validValue(sub, options, key);
      return fc.record(model, { requiredKeys: [...required].filter((key) => key in props) });
    }
    default:
      return junk;
  }
}

function bound(value: number | undefined, exclusive: number | boolean | undefined, step: number) {
  if (typeof exclusive === 'number') return exclusive + step;
  if (value === undefined) return undefined;
  return exclusive === true ? value + step : value;
}

/** A value that breaks `schema`, or at least is hostile to it. */
export function invalidValue(schema: Schema, options: GenerateOptions, name = ''): fc.Arbitrary<unknown> {
  const s = deref(options.doc, schema);
  const wrongType = junk.filter((v) => typeOf(v) !== (s.type === 'integer' ? 'number' : s.type));
  const choices: fc.Arbitrary<unknown>[] = [wrongType];
  switch (s.type) {
    case 'string': {
      if (s.maxLength !== undefined) choices.push(fc.constant('y'.repeat(s.maxLength + 1)));
      if ((s.minLength ?? 0) > 0) choices.push(fc.constant(''));
      if (s.pattern) choices.push(hostileString.filter((v) => !new RegExp(s.pattern!).test(v)));
      if (s.enum) choices.push(hostileString.filter((v) => !s.enum!.includes(v)));
      if (isImageField(name, s)) {
        choices.push(
          fc.constantFrom('not base64 !!!', '====', 'data:', 'data:image/png;base64,', 'AAAA'),
          fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => Buffer.from(b).toString('base64')),
        );
      }
      break;
    }
    case 'integer':
    case 'number': {
      if (s.minimum !== undefined) choices.push(fc.constant(s.minimum - 1));
      if (s.maximum !== undefined) choices.push(fc.constant(s.maximum + 1));
      if (s.type === 'integer') choices.push(fc.constantFrom(0.5, 1e21, -1e21, 2 ** 53 + 1));
      choices.push(fc.constantFrom('1', '0x10', '1e3', ''));
      break;
    }
    case 'array': {
      const items = s.items ?? {};
      if ((s.minItems ?? 0) > 0) choices.push(fc.constant([]));
      if (s.maxItems !== undefined) {
        const too = Math.min(s.maxItems + 1, 20_000);
        choices.push(validValue(items, { ...options, maxItems: 1 }, name).map((one) => Array(too).fill(one)));
      }
      choices.push(
        fc
          .tuple(
            fc.array(validValue(items, options, name), { maxLength: 2 }),
            invalidValue(items, options, name),
          )
          .map(([good, bad]) => [...good, bad]),
      );
      break;
    }
    case 'object': {
      const valid = validValue(s, options) as fc.Arbitrary<Record<string, unknown>>;
      const props = Object.entries(s.properties ?? {});
      const extraKey = fc.oneof(fc.constantFrom(...PROTO_KEYS), fc.string({ minLength: 1, maxLength: 12 }));
      choices.push(
        // An extra key (additionalProperties: false), possibly __proto__ or constructor.
        fc
          .tuple(valid, extraKey, junk)
          .filter(([, key]) => !(key in (s.properties ?? {})))
          .map(([value, key, extra]) => withOwnKey(value, key, extra)),
        // A prototype-pollution attempt.
        valid.map((value) => withOwnKey(value, '__proto__', { polluted: 'yes', isAdmin: true })),
        valid.map((value) => withOwnKey(value, 'constructor', { prototype: { polluted: 'yes' } })),
      );
      if ((s.required ?? []).length > 0) {
        choices.push(
          fc.tuple(valid, fc.constantFrom(...s.required!)).map(([value, key]) => {
            const copy = { ...value };
            delete copy[key];
            return copy;
          }),
        );
      }
      if (props.length > 0) {
        choices.push(
          fc
            .constantFrom(...props)
            .chain(([key, sub]) => fc.tuple(valid, fc.constant(key), invalidValue(sub, options, key)))
            .map(([value, key, bad]) => ({ ...value, [key]: bad })),
        );
      }
      break;
    }
  }
  return fc.oneof(...choices);
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

// ---------------------------------------------------------------------------------------------
// Requests

function queryString(entries: [string, unknown][]): string {
  const params = new URLSearchParams();
  for (const [key, value] of entries) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) params.append(key, scalar(item));
    else params.append(key, scalar(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** Percent-encodes a path segment; a lone surrogate becomes the invalid UTF-8 a client could send. */
function encodePathSegment(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return text.replace(/[^A-Za-z0-9]/g, (char) =>
      /[\ud800-\udfff]/.test(char) ? '%ED%A0%80' : encodeURIComponent(char),
    );
  }
}

const scalar = (value: unknown) => (typeof value === 'string' ? value : (JSON.stringify(value) ?? ''));

/** A value of a query or path parameter: its text as a client would send it. */
function parameterArbitrary(
  param: Parameter,
  options: GenerateOptions,
  valid: boolean,
): fc.Arbitrary<unknown> {
  return valid
    ? validValue(param.schema, options, param.name)
    : invalidValue(param.schema, options, param.name);
}

function multipart(fields: [string, string | Buffer, string?][]): { body: Buffer; type: string } {
  const boundary = `----fuzz${Math.random().toString(16).slice(2)}`;
  const parts: Buffer[] = [];
  for (const [name, value, filename] of fields) {
    const disposition = filename
      ? `form-data; name="${name}"; filename="${filename}"\r\nContent-Type: application/octet-stream`
      : `form-data; name="${name}"`;
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n\r\n`));
    parts.push(typeof value === 'string' ? Buffer.from(value) : value);
    parts.push(Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

/** Requests for one operation: about a third valid, the rest breaking one part of it. */
export function requestArbitrary(op: Operation, options: GenerateOptions): fc.Arbitrary<FuzzRequest> {
  const pathParams = op.parameters.filter((p) => p.in === 'path');
  const queryParams = op.parameters.filter((p) => p.in === 'query');

  const build = (valid: { path: boolean; query: boolean; body: boolean }) => {
    const path = fc.tuple(...pathParams.map((p) => parameterArbitrary(p, options, valid.path)));
    const query = fc.tuple(
      ...queryParams.map((p) =>
        valid.query && !p.required
          ? fc.option(parameterArbitrary(p, options, true), { nil: undefined })
          : parameterArbitrary(p, options, valid.query),
      ),
    );
    const extraQuery = valid.query
      ? fc.constant<[string, unknown][]>([])
      : fc.array(fc.tuple(fc.oneof(fc.constantFrom(...PROTO_KEYS), fc.string({ maxLength: 8 })), junk), {
          maxLength: 2,
        });
    return fc.tuple(path, query, extraQuery).map(([pathValues, queryValues, extra]) => {
      let url = op.path;
      pathParams.forEach((p, i) => {
        url = url.replace(`{${p.name}}`, encodePathSegment(scalar(pathValues[i])));
      });
      const entries: [string, unknown][] = queryParams.map((p, i) => [p.name, queryValues[i]]);
      return url + queryString([...entries, ...extra]);
    });
  };

  const bodyFor = (valid: boolean): fc.Arbitrary<Pick<FuzzRequest, 'headers' | 'payload'>> => {
    if (!op.body) {
      // Routes without a body get one anyway now and then.
      return fc.oneof(
        { weight: 4, arbitrary: fc.constant({ headers: {} }) },
        junk.map((value) => ({
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify(value) ?? 'null',
        })),
      );
    }
    const json = (value: unknown) => ({
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(value) ?? 'null',
    });
    if (valid) return validValue(op.body, options).map(json);
    const garbage = fc.oneof(
      fc.constantFrom('{', '{"a":', '[1,2', '{"__proto__":{"polluted":"yes"}}', 'null', '', '\u0000', '{}}'),
      hostileString,
    );
    const choices: fc.Arbitrary<Pick<FuzzRequest, 'headers' | 'payload'>>[] = [
      invalidValue(op.body, options).map(json),
      invalidValue(op.body, options).map(json),
      invalidValue(op.body, options).map(json),
      junk.map(json),
      garbage.map((text) => ({ headers: { 'content-type': 'application/json' }, payload: text })),
      fc
        .tuple(
          fc.constantFrom('text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'foo/bar'),
          hostileString,
        )
        .map(([type, text]) => ({ headers: { 'content-type': type }, payload: text })),
      fc.constant({ headers: {} }),
    ];
    const imageProp = op.body.properties?.image;
    if (imageProp && isImageField('image', imageProp)) {
      const otherFields = validValue(
        { ...op.body, required: (op.body.required ?? []).filter((k) => k !== 'image') },
        options,
      );
      choices.push(
        fc
          .tuple(
            imageBytes(options.validPngs),
            otherFields,
            fc.constantFrom('image', 'image', 'file', '__proto__'),
            fc.option(fc.tuple(fc.constantFrom(...PROTO_KEYS, 'x'), hostileString)),
          )
          .map(([bytes, fields, fileField, extra]) => {
            const parts: [string, string | Buffer, string?][] = Object.entries(
              fields as Record<string, unknown>,
            )
              .filter(([key]) => key !== 'image')
              .map(([key, value]) => [key, scalar(value)]);
            parts.push([fileField, bytes, 'upload.png']);
            if (extra) parts.push([extra[0], extra[1]]);
            const { body, type } = multipart(parts);
            return { headers: { 'content-type': type }, payload: body };
          }),
      );
    }
    return fc.oneof(...choices);
  };

  const validRequest = fc
    .tuple(build({ path: true, query: true, body: true }), bodyFor(true))
    .map(([url, body]) => ({ method: op.method, url, ...body, kind: 'valid' as const }));
  const invalidParts = fc.constantFrom(
    ...[
      pathParams.length > 0 ? { path: false, query: true, body: true } : undefined,
      queryParams.length > 0 ? { path: true, query: false, body: true } : undefined,
      { path: true, query: true, body: false },
    ].filter((x) => x !== undefined),
  );
  const invalidRequest = invalidParts.chain((valid) =>
    fc
      .tuple(build(valid), bodyFor(valid.body))
      .map(([url, body]) => ({ method: op.method, url, ...body, kind: 'invalid' as const })),
  );
  return fc.oneof({ weight: 2, arbitrary: validRequest }, { weight: 3, arbitrary: invalidRequest });
}
