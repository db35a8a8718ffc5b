import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdentityError } from '../../../src/errors/index.js';
import { isJsonObject, JsonNumber, parseStrictJson, toPlainJson } from '../../../src/internal/strict-json.js';

const parse = (text: string, maxDepth?: number) => parseStrictJson(text, { codePrefix: 'test', maxDepth });

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IdentityError);
    return (err as IdentityError).code;
  }
  return 'no error';
}

describe('parseStrictJson', () => {
  it('parses what JSON.parse parses, to the same value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v);
        expect(JSON.stringify(toPlainJson(parse(text)))).toBe(JSON.stringify(JSON.parse(text)));
        const spaced = JSON.stringify(v, null, '\t');
        expect(JSON.stringify(toPlainJson(parse(` \r\n${spaced}\n `)))).toBe(text);
      }),
      { numRuns: 500 },
    );
  });

  it('decodes escapes, including surrogate pairs', () => {
    expect(parse(String.raw`"a\"\\\/\b\f\n\r\t\u0041\ud83e\udd2f"`)).toBe('a"\\/\b\f\n\r\t\u0041\u{1F92F}');
  });

  it('keeps the literal text of numbers', () => {
    const v = parse('{"big":18446744073709551616,"f":1.0,"e":-2E+3}');
    expect(isJsonObject(v)).toBe(true);
    const o = v as Record<string, JsonNumber>;
    expect(o['big']).toBeInstanceOf(JsonNumber);
    expect(o['big']!.text).toBe('18446744073709551616');
    expect(o['f']!.text).toBe('1.0');
    expect(o['f']!.value).toBe(1);
    expect(o['e']!.value).toBe(-2000);
  });

  const duplicates: Array<[string, string]> = [
    ['top level', '{"a":1,"a":2}'],
    ['same value', '{"keys":[],"keys":[]}'],
    ['escaped spelling', '{"a":1,"\\u0061":2}'],
    ['nested', '{"keys":[{"kid":"x","kid":"y"}]}'],
    ['__proto__', '{"__proto__":1,"__proto__":2}'],
  ];
  it.each(duplicates)('rejects duplicate member names: %s', (_n, text) => {
    const code = codeOf(() => parse(text));
    expect(code).toBe('test-json-duplicate-member');
    expect(JSON.parse(text)).toBeDefined(); // JSON.parse would have kept the last one silently
  });

  it('allows the same name in different objects', () => {
    expect(codeOf(() => parse('{"a":{"a":1},"b":[{"a":1},{"a":2}]}'))).toBe('no error');
  });

  it('creates objects without a prototype and never pollutes Object.prototype', () => {
    const v = parse('{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}}}');
    expect(Object.getPrototypeOf(v)).toBeNull();
    expect(Object.hasOwn(v as object, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    const plain = toPlainJson(v) as Record<string, unknown>;
    expect(Object.hasOwn(plain, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(plain)).toBe(Object.prototype);
  });

  const syntax: Array<[string, string]> = [
    ['empty input', ''],
    ['whitespace only', '  '],
    ['trailing comma in object', '{"a":1,}'],
    ['trailing comma in array', '[1,]'],
    ['leading zero', '01'],
    ['plus sign', '+1'],
    ['bare fraction', '.5'],
    ['dangling point', '1.'],
    ['dangling exponent', '1e'],
    ['NaN', 'NaN'],
    ['Infinity', 'Infinity'],
    ['single quotes', "{'a':1}"],
    ['unquoted name', '{a:1}'],
    ['comment', '{"a":1 /* c */}'],
    ['unescaped control character', '"a\u0001b"'],
    ['raw newline in string', '"a\nb"'],
    ['invalid escape', '"\\x41"'],
    ['short unicode escape', '"\\u41"'],
    ['unterminated string', '"abc'],
    ['unterminated array', '[1,2'],
    ['unterminated object', '{"a":1'],
    ['missing colon', '{"a" 1}'],
    ['missing value', '{"a":}'],
    ['data after the value', '{} {}'],
    ['byte order mark', '\ufeff{}'],
    ['non-JSON whitespace', '\u00a0{}'],
    ['truncated literal', 'tru'],
    ['capitalised literal', 'True'],
  ];
  it.each(syntax)('rejects %s', (_n, text) => {
    expect(codeOf(() => parse(text))).toBe('test-json-syntax');
  });

  it('bounds the nesting depth', () => {
    const nested = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
    expect(codeOf(() => parse(nested(32)))).toBe('no error');
    expect(codeOf(() => parse(nested(33)))).toBe('test-json-too-deep');
    expect(codeOf(() => parse(nested(4), 3))).toBe('test-json-too-deep');
    expect(codeOf(() => parse(`${'{"a":'.repeat(40)}1${'}'.repeat(40)}`))).toBe('test-json-too-deep');
    // Deep enough to overflow a naive recursive parser's stack: bounded instead.
    expect(codeOf(() => parse(nested(200_000)))).toBe('test-json-too-deep');
  });

  it('never throws anything but IdentityError', () => {
    const inputs = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.string({ unit: 'binary', maxLength: 60 }),
      fc.jsonValue().chain((v) => {
        const s = JSON.stringify(v);
        return fc
          .tuple(fc.nat(s.length), fc.nat(3), fc.string({ unit: 'binary', maxLength: 2 }))
          .map(([at, cut, ins]) => s.slice(0, at) + ins + s.slice(at + cut));
      }),
    );
    fc.assert(
      fc.property(inputs, (text) => {
        let ok = true;
        try {
          parse(text);
        } catch (err) {
          expect(err).toBeInstanceOf(IdentityError);
          ok = false;
        }
        // Whatever we accept, JSON.parse accepts too (we are never laxer).
        if (ok) expect(() => JSON.parse(text)).not.toThrow();
      }),
      { numRuns: 3000 },
    );
  });
});
