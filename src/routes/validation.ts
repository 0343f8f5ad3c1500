/**
 * Request validation, in one place: the validator compiler of every route (TypeBox's, with two
 * changes) and the messages of its errors.
 *
 * - Messages name what is allowed: a union of literals is "factors must be 2 or 7", not TypeBox's
 *   "Expected union value"; a pattern is explained by the schema's `allowed` text (see
 *   `withAllowed`), else named; bounds and types say which field and what it must be.
 * - Path and query integers must be spelled as integers: TypeBox's conversion reads "1.5" as 1,
 *   so `/v1/neurons/1.5/top-words` would have been neuron 1; here it is a 400.
 *
 * An `allowed` text may hold `{neuronMax}`, replaced by the loaded model's largest neuron id.
 */
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import { Kind, type TSchema } from '@sinclair/typebox';
import type { FastifySchemaCompiler } from 'fastify';

/** Where a schema keeps the sentence that says what it allows (a symbol: not in the OpenAPI document). */
const ALLOWED = Symbol('allowed');

interface WithAllowed {
  [ALLOWED]?: string;
}

/** The schema, with the sentence its validation errors give ("neuron id must be …"). */
export function withAllowed<T extends TSchema>(schema: T, allowed: string): T {
  Object.defineProperty(schema, ALLOWED, { value: allowed, enumerable: false });
  return schema;
}

export interface ValidationContext {
  /** The loaded model's neuron count, when known. */
  neuronCount?: () => number | undefined;
}

/** Fastify's shape of a validation error (Ajv's), filled from TypeBox's. */
interface FormattedError {
  message: string;
  instancePath: string;
  keyword: string;
  schemaPath: string;
  params: Record<string, unknown>;
}

function formatted(message: string, instancePath: string, keyword: string): FormattedError {
  return { message, instancePath, keyword, schemaPath: '#', params: {} };
}

/** TypeBox's validator compiler with the checks and messages above. */
export function validatorCompiler(context: ValidationContext = {}): FastifySchemaCompiler<TSchema> {
  return ({ schema, httpPart }) => {
    const check = TypeCompiler.Compile(schema);
    return (value: unknown) => {
      if (httpPart !== 'body') {
        const spelling = integerSpelling(schema, value, context);
        if (spelling) return { error: [spelling] };
      }
      const converted = httpPart === 'body' ? value : Value.Convert(schema, value);
      if (check.Check(converted)) return { value: converted };
      const first = check.Errors(converted).First();
      if (!first) return { error: [formatted('the request is invalid', '', 'unknown')] };
      return {
        error: [formatted(describe(first, context), first.path, ValueErrorType[first.type] ?? 'unknown')],
      };
    };
  };
}

function allowedText(schema: TSchema, context: ValidationContext): string | undefined {
  const allowed = (schema as WithAllowed)[ALLOWED];
  if (!allowed) return undefined;
  const count = context.neuronCount?.();
  return allowed.replace('{neuronMax}', count === undefined ? 'the last neuron' : String(count - 1));
}

/** "factors", "texts[2]", or "the body" for the value at a TypeBox path such as /texts/2. */
export function fieldName(path: string): string {
  const parts = path.split('/').filter((part) => part !== '');
  if (parts.length === 0) return 'the value';
  return parts
    .map((part, index) => (/^\d+$/.test(part) && index > 0 ? `[${part}]` : index > 0 ? `.${part}` : part))
    .join('');
}

function literal(value: unknown): string {
  return typeof value === 'string' ? `"${value}"` : String(value);
}

function either(values: string[]): string {
  if (values.length <= 1) return values.join('');
  return `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`;
}

/** The literals of a union of literals (or undefined when it is another kind of union). */
function unionLiterals(schema: TSchema): string[] | undefined {
  const members = (schema.anyOf ?? []) as TSchema[];
  if (members.length === 0 || !members.every((member) => member.const !== undefined)) return undefined;
  return members.map((member) => literal(member.const));
}

const TYPE_NAMES: Record<string, string> = {
  Integer: 'an integer',
  Number: 'a number',
  String: 'a string',
  Boolean: 'true or false',
  Array: 'an array',
  Object: 'an object',
  Null: 'null',
};

function kindName(schema: TSchema): string {
  const literals = unionLiterals(schema);
  if (literals) return either(literals);
  if (schema.const !== undefined) return literal(schema.const);
  return TYPE_NAMES[String(schema[Kind])] ?? String(schema[Kind]).toLowerCase();
}

/** One validation error as a sentence that names the field and what it allows. */
export function describe(error: ValueError, context: ValidationContext = {}): string {
  const { schema } = error;
  const field = fieldName(error.path);
  const allowed = allowedText(schema, context);
  if (allowed) return allowed;
  const bounds = (what: string) => {
    const min = schema.minimum ?? schema.exclusiveMinimum;
    const max = schema.maximum ?? schema.exclusiveMaximum;
    if (min !== undefined && max !== undefined) return `${field} must be ${what} from ${min} to ${max}`;
    if (min !== undefined) return `${field} must be ${what} of at least ${min}`;
    if (max !== undefined) return `${field} must be ${what} of at most ${max}`;
    return `${field} must be ${what}`;
  };
  switch (error.type) {
    case ValueErrorType.Union: {
      const members = (schema.anyOf ?? []) as TSchema[];
      return `${field} must be ${either(members.map(kindName))}`;
    }
    case ValueErrorType.Literal:
      return `${field} must be ${literal(schema.const)}`;
    case ValueErrorType.StringPattern:
      return `${field} must match the pattern ${schema.pattern}`;
    case ValueErrorType.StringFormat:
      return `${field} must be a ${schema.format} string`;
    case ValueErrorType.StringMinLength:
      return `${field} must have at least ${schema.minLength} character${schema.minLength === 1 ? '' : 's'}`;
    case ValueErrorType.StringMaxLength:
      return `${field} must have at most ${schema.maxLength} characters`;
    case ValueErrorType.ArrayMinItems:
      return `${field} must have at least ${schema.minItems} item${schema.minItems === 1 ? '' : 's'}`;
    case ValueErrorType.ArrayMaxItems:
      return `${field} must have at most ${schema.maxItems} items`;
    case ValueErrorType.Integer:
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.IntegerExclusiveMinimum:
    case ValueErrorType.IntegerExclusiveMaximum:
      return bounds('an integer');
    case ValueErrorType.Number:
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.NumberExclusiveMinimum:
    case ValueErrorType.NumberExclusiveMaximum:
      return bounds('a number');
    case ValueErrorType.ObjectAdditionalProperties:
      return notAllowed(error);
    case ValueErrorType.ObjectRequiredProperty:
      return `${field} is required`;
    default: {
      const kind = TYPE_NAMES[String(schema[Kind])];
      return kind ? `${field} must be ${kind}` : `${field}: ${error.message}`;
    }
  }
}

/**
 * "the request has a field that is not allowed: "colour" (allowed: emotions, templates, …)". TypeBox
 * reports an extra field either at the object (value: the object) or at the field itself (path
 * /colour, value: the field's value); both name the object's fields.
 */
function notAllowed(error: ValueError): string {
  const value = error.value;
  const properties = Object.keys((error.schema.properties ?? {}) as Record<string, unknown>);
  let owner = error.path;
  let extra: string[];
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    extra = Object.keys(value).filter((key) => !properties.includes(key));
  } else {
    const parts = error.path.split('/');
    extra = [parts.pop() ?? ''];
    owner = parts.join('/');
  }
  const where = fieldName(owner);
  const names = extra.map((key) => `"${key}"`).join(', ');
  return (
    `${where === 'the value' ? 'the request' : where} has ${extra.length > 1 ? 'fields' : 'a field'} that ` +
    `${extra.length > 1 ? 'are' : 'is'} not allowed: ${names}` +
    (properties.length > 0 ? ` (allowed: ${properties.join(', ')})` : '')
  );
}

/**
 * A path or query value for an integer field that is not spelled as an integer ("1.5", "1e3",
 * " 2"), which conversion would otherwise truncate or accept.
 */
function integerSpelling(
  schema: TSchema,
  value: unknown,
  context: ValidationContext,
): FormattedError | undefined {
  if (schema[Kind] !== 'Object' || typeof value !== 'object' || value === null) return undefined;
  const properties = (schema.properties ?? {}) as Record<string, TSchema>;
  for (const [name, property] of Object.entries(properties)) {
    if (property[Kind] !== 'Integer') continue;
    const raw = (value as Record<string, unknown>)[name];
    const spellings = Array.isArray(raw) ? raw : [raw];
    for (const spelling of spellings) {
      if (typeof spelling === 'string' && !/^-?[0-9]+$/.test(spelling)) {
        const message = allowedText(property, context) ?? bareBounds(name, property);
        return formatted(`${message}, got "${spelling.slice(0, 40)}"`, `/${name}`, 'integer');
      }
    }
  }
  return undefined;
}

function bareBounds(name: string, schema: TSchema): string {
  const min = schema.minimum;
  const max = schema.maximum;
  if (min !== undefined && max !== undefined) return `${name} must be an integer from ${min} to ${max}`;
  if (min !== undefined) return `${name} must be an integer of at least ${min}`;
  return `${name} must be an integer`;
}

/**
 * The message of a 415 for a body of a type no parser takes: what to send instead. Routes whose
 * body has an `image` field also take multipart uploads (src/routes/image-input.ts).
 */
export function unsupportedMediaTypeMessage(contentType: string | undefined, bodySchema: unknown): string {
  const properties = (bodySchema as { properties?: Record<string, unknown> } | undefined)?.properties;
  const sent = contentType
    ? `content-type ${contentType.split(';')[0]!.trim().slice(0, 100)}`
    : 'no content-type';
  const upload = properties !== undefined && 'image' in properties;
  return upload
    ? `${sent} is not accepted here: send JSON with content-type: application/json, or upload the image as multipart/form-data (its file in the field "image")`
    : `${sent} is not accepted here: send JSON with content-type: application/json`;
}
