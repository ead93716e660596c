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
}

export const str: Schema = { type: 'string' };
export const int: Schema = { type: 'integer' };
export const num: Schema = { type: 'number' };
export const bool: Schema = { type: 'boolean' };
export const strs: Schema = { type: 'array', items: str };
export const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
export const arr = (items: Schema): Schema => ({ type: 'array', items });
export const anyValue: Schema = { description: 'any JSON value' };

/** An object schema: keys ending in "?" are optional. */
export function obj(props: Record<string, Schema>, extra = false): Schema {
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

/**
 * Check a value against a schema; returns the problems found ("" path = the value itself).
 * `resolve` turns a $ref into its schema.
 */
export function validate(
  value: unknown,
  schema: Schema,
  resolve: (ref: string) => Schema | undefined,
  path = '',
): string[] {
  if (schema.$ref) {
    const s = resolve(schema.$ref);
    return s ? validate(value, s, resolve, path) : [`${path || 'value'}: unknown schema ${schema.$ref}`];
  }
  const at = path || 'value';
  if (value === null) return schema.nullable ? [] : [`${at}: must not be null`];
  if (schema.oneOf) {
    const ok = schema.oneOf.filter((s) => validate(value, s, resolve, path).length === 0);
    return ok.length === 1 ? [] : [`${at}: matches ${ok.length} of the allowed shapes, not exactly one`];
  }
  if (schema.enum && !schema.enum.includes(value as string))
    return [`${at}: must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`];
  switch (schema.type) {
    case undefined:
      return [];
    case 'string':
      return typeof value === 'string' ? [] : [`${at}: must be a string`];
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${at}: must be true or false`];
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return [`${at}: must be a number`];
      if (schema.type === 'integer' && !Number.isInteger(value)) return [`${at}: must be an integer`];
      if (schema.minimum !== undefined && value < schema.minimum)
        return [`${at}: must be >= ${schema.minimum}`];
      if (schema.maximum !== undefined && value > schema.maximum)
        return [`${at}: must be <= ${schema.maximum}`];
      return [];
    }
    case 'array': {
      if (!Array.isArray(value)) return [`${at}: must be an array`];
      const items = schema.items;
      return items ? value.flatMap((v, i) => validate(v, items, resolve, `${path}[${i}]`)) : [];
    }
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) return [`${at}: must be an object`];
      const o = value as Record<string, unknown>;
      const problems: string[] = [];
      for (const k of schema.required ?? [])
        if (o[k] === undefined) problems.push(`${path ? `${path}.` : ''}${k}: is required`);
      for (const [k, v] of Object.entries(o)) {
        if (v === undefined) continue;
        const p = schema.properties?.[k];
        const sub = path ? `${path}.${k}` : k;
        if (p) problems.push(...validate(v, p, resolve, sub));
        else if (schema.additionalProperties === false) problems.push(`${sub}: is not a known field`);
        else if (typeof schema.additionalProperties === 'object')
          problems.push(...validate(v, schema.additionalProperties, resolve, sub));
      }
      return problems;
    }
    default:
      return [`${at}: has an unknown schema type`];
  }
}
