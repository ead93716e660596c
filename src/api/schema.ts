/**
 * A small subset of JSON Schema (what OpenAPI 3.0 documents use): enough to describe jaula's
 * API and to check requests (in jaulad) and responses (in the API tests) against it.
 */

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  enum?: readonly (string | number | boolean)[];
  oneOf?: Schema[];
  $ref?: string;
  description?: string;
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  /** A string's ECMAScript pattern (checked whole: give ^ and $) and most characters. */
  pattern?: string;
  maxLength?: number;
}

declare const wire: unique symbol;

/**
 * A schema that carries, for the compiler only, the TypeScript type of the values it accepts:
 * the API's wire types are derived from its schemas (WireType), so the two cannot drift apart.
 * Build them with the helpers below; a plain Schema's values are `unknown`.
 */
export type Typed<T> = Schema & { readonly [wire]?: (value: T) => T };

/** The TypeScript type of the values a schema accepts. */
export type WireType<S> = S extends { readonly [wire]?: (value: infer T) => unknown } ? T : unknown;

type Flat<T> = { [K in keyof T]: T[K] };
type RequiredOf<P> = { -readonly [K in keyof P as K extends `${string}?` ? never : K]: WireType<P[K]> };
type OptionalOf<P> = { -readonly [K in keyof P as K extends `${infer N}?` ? N : never]?: WireType<P[K]> };
/** An object schema's type: keys ending in "?" optional. */
export type ObjectOf<P> = Flat<RequiredOf<P> & OptionalOf<P>>;

export const str: Typed<string> = { type: 'string' };
export const int: Typed<number> = { type: 'integer' };
export const num: Typed<number> = { type: 'number' };
export const bool: Typed<boolean> = { type: 'boolean' };
export const strs: Typed<string[]> = { type: 'array', items: str };
export const arr = <T>(items: Typed<T>): Typed<T[]> => ({ type: 'array', items });
export const anyValue: Typed<unknown> = { description: 'any JSON value' };
/** One of these strings. */
export const oneOf = <const E extends readonly string[]>(values: E): Typed<E[number]> => ({
  type: 'string',
  enum: values,
});
/** The schema's values, or null. */
export const nullable = <T>(s: Typed<T>): Typed<T | null> => ({ ...(s as Schema), nullable: true });
/** An object of any keys, each value of the schema. */
export const record = <T>(values: Typed<T>): Typed<Record<string, T>> => ({
  type: 'object',
  additionalProperties: values,
});

/** The shared schemas (components.schemas in the OpenAPI document), by name, as component() adds them. */
export const COMPONENTS: Record<string, Schema> = {};

/**
 * A shared schema: kept in COMPONENTS under `name`; what is returned refers to it ($ref), with
 * its type.
 */
export function component<T>(name: string, schema: Typed<T>): Typed<T> {
  COMPONENTS[name] = schema;
  return { $ref: `#/components/schemas/${name}` };
}

/** An object schema: keys ending in "?" are optional. */
export function obj<const P extends Record<string, Schema>>(props: P, extra = false): Typed<ObjectOf<P>> {
  const properties: Record<string, Schema> = {};
  const required: string[] = [];
  for (const [k, v] of Object.entries(props)) {
    const opt = k.endsWith('?');
    const key = opt ? k.slice(0, -1) : k;
    properties[key] = v;
    if (!opt) required.push(key);
  }
  const s: Schema = { type: 'object', properties, additionalProperties: extra };
  if (required.length) s.required = required;
  return s;
}

/** At most this many problems are reported (a request with 300,000 wrong values gets a short answer). */
export const MAX_PROBLEMS = 20;

/** The value as a message shows it: quoted, control characters escaped, long ones cut. */
function shown(v: string): string {
  return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}...` : v);
}

/**
 * Check a value against a schema; returns the problems found ("" path = the value itself), at
 * most MAX_PROBLEMS (then one more line says there were more). `resolve` turns a $ref into its
 * schema. Only own properties count, of the value and of the schema: "__proto__" or
 * "constructor" in a request are unknown fields, never a way to the prototype.
 */
export function validate(
  value: unknown,
  schema: Schema,
  resolve: (ref: string) => Schema | undefined,
  path = '',
): string[] {
  const out: string[] = [];
  check(value, schema, resolve, path, out);
  if (out.length > MAX_PROBLEMS) out.splice(MAX_PROBLEMS, out.length, 'and more problems (not listed)');
  return out;
}

/** A field name as a message shows it: plain names as they are, others quoted. */
const field = (k: string): string => (/^[\w$-]{1,64}$/.test(k) ? k : shown(k));

const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** A schema's property by name: its own, never one inherited from Object.prototype. */
export function propertyOf(schema: Schema, k: string): Schema | undefined {
  return schema.properties && own(schema.properties, k) ? schema.properties[k] : undefined;
}

/** check() for an object: required fields, known fields, each field's value. */
function checkObject(
  value: unknown,
  schema: Schema,
  resolve: (ref: string) => Schema | undefined,
  path: string,
  out: string[],
): void {
  const at = path || 'value';
  if (typeof value !== 'object' || Array.isArray(value)) {
    out.push(`${at}: must be an object`);
    return;
  }
  const o = value as Record<string, unknown>;
  for (const k of schema.required ?? [])
    if (!own(o, k) || o[k] === undefined) out.push(`${path ? `${path}.` : ''}${k}: is required`);
  for (const k of Object.keys(o)) {
    if (out.length > MAX_PROBLEMS) return;
    const v = o[k];
    if (v === undefined) continue;
    const p = propertyOf(schema, k);
    const sub = path ? `${path}.${field(k)}` : field(k);
    if (p) check(v, p, resolve, sub, out);
    else if (schema.additionalProperties === false) out.push(`${sub}: is not a known field`);
    else if (typeof schema.additionalProperties === 'object')
      check(v, schema.additionalProperties, resolve, sub, out);
  }
}

function check(
  value: unknown,
  schema: Schema,
  resolve: (ref: string) => Schema | undefined,
  path: string,
  out: string[],
): void {
  if (out.length > MAX_PROBLEMS) return;
  if (schema.$ref) {
    const s = resolve(schema.$ref);
    if (s) check(value, s, resolve, path, out);
    else out.push(`${path || 'value'}: unknown schema ${schema.$ref}`);
    return;
  }
  const at = path || 'value';
  if (value === null) {
    if (!schema.nullable) out.push(`${at}: must not be null`);
    return;
  }
  if (schema.oneOf) {
    const ok = schema.oneOf.filter((s) => validate(value, s, resolve, path).length === 0);
    if (ok.length !== 1) out.push(`${at}: matches ${ok.length} of the allowed shapes, not exactly one`);
    return;
  }
  if (schema.enum && !schema.enum.includes(value as string)) {
    out.push(`${at}: must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`);
    return;
  }
  switch (schema.type) {
    case undefined:
      return;
    case 'string':
      if (typeof value !== 'string') out.push(`${at}: must be a string`);
      else if (schema.maxLength !== undefined && value.length > schema.maxLength)
        out.push(`${at}: ${shown(value)} is longer than ${schema.maxLength} characters`);
      else if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value))
        out.push(
          `${at}: ${shown(value)} is not valid (${schema.description ?? `it must match ${schema.pattern}`})`,
        );
      return;
    case 'boolean':
      if (typeof value !== 'boolean') out.push(`${at}: must be true or false`);
      return;
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) out.push(`${at}: must be a number`);
      else if (schema.type === 'integer' && !Number.isInteger(value)) out.push(`${at}: must be an integer`);
      else if (schema.minimum !== undefined && value < schema.minimum)
        out.push(`${at}: must be >= ${schema.minimum}`);
      else if (schema.maximum !== undefined && value > schema.maximum)
        out.push(`${at}: must be <= ${schema.maximum}`);
      return;
    }
    case 'array': {
      if (!Array.isArray(value)) {
        out.push(`${at}: must be an array`);
        return;
      }
      const items = schema.items;
      if (items)
        for (let i = 0; i < value.length && out.length <= MAX_PROBLEMS; i++)
          check(value[i], items, resolve, `${path}[${i}]`, out);
      return;
    }
    case 'object':
      checkObject(value, schema, resolve, path, out);
      return;
    default:
      out.push(`${at}: has an unknown schema type`);
  }
}
