import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_PROBLEMS, obj, propertyOf, str, strs, validate, type Schema } from './schema.js';

const none = (): Schema | undefined => undefined;

describe('request validation', () => {
  const body = obj({ 'guests?': strs, 'all?': { type: 'boolean' } });

  it('takes only own properties: "__proto__" and "constructor" are unknown fields', () => {
    const v = JSON.parse('{"__proto__": {"guests": "abc"}, "constructor": {"prototype": {}}}') as unknown;
    assert.deepEqual(validate(v, body, none), [
      '__proto__: is not a known field',
      'constructor: is not a known field',
    ]);
    assert.equal(propertyOf(body, '__proto__'), undefined);
    assert.equal(propertyOf(body, 'toString'), undefined);
    assert.deepEqual(propertyOf(body, 'guests'), strs);
  });

  it("a required field must be the value's own", () => {
    const s = obj({ name: str });
    const inherited = Object.create({ name: 'x' }) as object;
    assert.deepEqual(validate(inherited, s, none), ['name: is required']);
  });

  it(`reports at most ${MAX_PROBLEMS} problems, however many values are wrong (no stack overflow)`, () => {
    const problems = validate({ guests: new Array(300_000).fill(1) }, body, none);
    assert.equal(problems.length, MAX_PROBLEMS + 1);
    assert.equal(problems[MAX_PROBLEMS], 'and more problems (not listed)');
    assert.equal(problems[0], 'guests[0]: must be a string');
  });

  it("checks a string's pattern and length, and quotes the value with control characters escaped", () => {
    const s: Schema = {
      type: 'string',
      pattern: '^[a-z]+$',
      maxLength: 8,
      description: 'lower-case letters',
    };
    assert.deepEqual(validate('abc', s, none), []);
    assert.deepEqual(validate('a\nb', s, none, 'name'), ['name: "a\\nb" is not valid (lower-case letters)']);
    assert.deepEqual(validate('abcdefghi', s, none, 'name'), [
      'name: "abcdefghi" is longer than 8 characters',
    ]);
    const quoted = validate({ 'a\nb': 1 }, body, none);
    assert.deepEqual(quoted, ['"a\\nb": is not a known field']);
  });
});
