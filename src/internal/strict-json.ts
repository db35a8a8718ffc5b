/**
 * A strict JSON (RFC 8259) parser for security-relevant documents such as SPIFFE bundles.
 *
 * It differs from `JSON.parse` in three ways:
 *
 * - a repeated member name in one object is an error (`JSON.parse` keeps the last one silently,
 *   SPIFFE Trust Domain and Bundle §6.3); names are compared after unescaping, so `"a"` and
 *   `"\u0061"` are the same name;
 * - nesting depth is bounded, so hostile input cannot exhaust the stack;
 * - numbers keep their literal text ({@link JsonNumber}), so callers can check integers beyond
 *   2^53 exactly instead of reading a rounded double.
 *
 * Objects are created without a prototype, so a `__proto__` member is an ordinary own member.
 * Every failure is an `IdentityError` whose code is `<codePrefix>-json-syntax`,
 * `<codePrefix>-json-duplicate-member` or `<codePrefix>-json-too-deep`.
 *
 * @internal
 * @packageDocumentation
 */

import { IdentityError } from '../errors/index.js';

/** A JSON number with its exact literal text. */
export class JsonNumber {
  /** The literal as written, e.g. `1.0` or `18446744073709551616`. */
  readonly text: string;
  /** The nearest double (may be rounded or infinite). */
  readonly value: number;

  /** @param text - a literal that matched the JSON number grammar. */
  constructor(text: string) {
    this.text = text;
    this.value = Number(text);
    Object.freeze(this);
  }
}

/** A parsed JSON value. Objects have a null prototype. */
export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

/** A parsed JSON object (null prototype; member order preserved). */
export interface JsonObject {
  [member: string]: JsonValue;
}

/** Options for {@link parseStrictJson}. */
export interface StrictJsonOptions {
  /** Area prefix of the error codes, e.g. `bundle` gives `bundle-json-syntax`. */
  codePrefix: string;
  /** Deepest allowed nesting of arrays and objects (default 32). */
  maxDepth?: number | undefined;
}

/** Tells whether `v` is a parsed JSON object (not an array, not null). */
export function isJsonObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof JsonNumber);
}

/**
 * Parses `text` strictly.
 *
 * @param text - the whole document; surrounding whitespace is allowed, anything else after the
 *   value is an error.
 * @param options - error code prefix and depth limit.
 * @returns the value.
 * @throws IdentityError on any syntax error, duplicate member or excessive depth.
 */
export function parseStrictJson(text: string, options: StrictJsonOptions): JsonValue {
  return new Parser(text, options).parseDocument();
}

const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Parser {
  readonly #s: string;
  readonly #prefix: string;
  readonly #maxDepth: number;
  #i = 0;

  constructor(s: string, options: StrictJsonOptions) {
    this.#s = s;
    this.#prefix = options.codePrefix;
    this.#maxDepth = options.maxDepth ?? 32;
  }

  parseDocument(): JsonValue {
    this.#ws();
    const v = this.#value(0);
    this.#ws();
    if (this.#i !== this.#s.length) this.#fail('unexpected data after the JSON value');
    return v;
  }

  #fail(what: string): never {
    throw new IdentityError(`${this.#prefix}-json-syntax`, `invalid JSON at offset ${this.#i}: ${what}`, {
      details: { offset: this.#i },
    });
  }

  #ws(): void {
    const s = this.#s;
    while (this.#i < s.length) {
      const c = s.charCodeAt(this.#i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      this.#i++;
    }
  }

  #value(depth: number): JsonValue {
    const s = this.#s;
    if (this.#i >= s.length) this.#fail('unexpected end of input, expected a value');
    const c = s.charCodeAt(this.#i);
    switch (c) {
      case 0x7b /* { */:
        return this.#object(depth + 1);
      case 0x5b /* [ */:
        return this.#array(depth + 1);
      case 0x22 /* " */:
        return this.#string();
      case 0x74 /* t */:
        return this.#literal('true', true);
      case 0x66 /* f */:
        return this.#literal('false', false);
      case 0x6e /* n */:
        return this.#literal('null', null);
      default:
        return this.#number();
    }
  }

  #enter(depth: number): void {
    if (depth > this.#maxDepth) {
      throw new IdentityError(
        `${this.#prefix}-json-too-deep`,
        `JSON nesting deeper than ${this.#maxDepth} levels at offset ${this.#i}`,
      );
    }
  }

  #object(depth: number): JsonObject {
    this.#enter(depth);
    const obj = Object.create(null) as JsonObject;
    this.#i++; // {
    this.#ws();
    if (this.#s.charCodeAt(this.#i) === 0x7d /* } */) {
      this.#i++;
      return obj;
    }
    for (;;) {
      if (this.#s.charCodeAt(this.#i) !== 0x22) this.#fail('expected a member name string');
      const nameAt = this.#i;
      const name = this.#string();
      if (Object.hasOwn(obj, name)) {
        throw new IdentityError(
          `${this.#prefix}-json-duplicate-member`,
          `duplicate JSON member name ${JSON.stringify(name.slice(0, 64))} at offset ${nameAt}: repeated names are ambiguous and rejected`,
          { details: { offset: nameAt } },
        );
      }
      this.#ws();
      if (this.#s.charCodeAt(this.#i) !== 0x3a /* : */) this.#fail("expected ':' after a member name");
      this.#i++;
      this.#ws();
      obj[name] = this.#value(depth);
      this.#ws();
      const c = this.#s.charCodeAt(this.#i);
      if (c === 0x2c /* , */) {
        this.#i++;
        this.#ws();
        continue;
      }
      if (c === 0x7d /* } */) {
        this.#i++;
        return obj;
      }
      this.#fail("expected ',' or '}' in an object");
    }
  }

  #array(depth: number): JsonValue[] {
    this.#enter(depth);
    const arr: JsonValue[] = [];
    this.#i++; // [
    this.#ws();
    if (this.#s.charCodeAt(this.#i) === 0x5d /* ] */) {
      this.#i++;
      return arr;
    }
    for (;;) {
      arr.push(this.#value(depth));
      this.#ws();
      const c = this.#s.charCodeAt(this.#i);
      if (c === 0x2c /* , */) {
        this.#i++;
        this.#ws();
        continue;
      }
      if (c === 0x5d /* ] */) {
        this.#i++;
        return arr;
      }
      this.#fail("expected ',' or ']' in an array");
    }
  }

  #literal<T extends JsonValue>(word: string, value: T): T {
    if (!this.#s.startsWith(word, this.#i)) this.#fail('unexpected character');
    this.#i += word.length;
    return value;
  }

  #number(): JsonNumber {
    NUMBER_RE.lastIndex = this.#i;
    const m = NUMBER_RE.exec(this.#s);
    if (m === null) this.#fail('unexpected character');
    this.#i += m[0].length;
    return new JsonNumber(m[0]);
  }

  #string(): string {
    const s = this.#s;
    this.#i++; // opening quote
    let out = '';
    let runStart = this.#i;
    for (;;) {
      if (this.#i >= s.length) this.#fail('unterminated string');
      const c = s.charCodeAt(this.#i);
      if (c === 0x22 /* " */) {
        out += s.slice(runStart, this.#i);
        this.#i++;
        return out;
      }
      if (c < 0x20) this.#fail('unescaped control character in a string');
      if (c !== 0x5c /* \ */) {
        this.#i++;
        continue;
      }
      out += s.slice(runStart, this.#i);
      this.#i++;
      const e = s.charCodeAt(this.#i);
      switch (e) {
        case 0x22:
          out += '"';
          break;
        case 0x5c:
          out += '\\';
          break;
        case 0x2f:
          out += '/';
          break;
        case 0x62:
          out += '\b';
          break;
        case 0x66:
          out += '\f';
          break;
        case 0x6e:
          out += '\n';
          break;
        case 0x72:
          out += '\r';
          break;
        case 0x74:
          out += '\t';
          break;
        case 0x75 /* u */:
          {
            const hex = s.slice(this.#i + 1, this.#i + 5);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.#fail('invalid \\u escape');
            out += String.fromCharCode(Number.parseInt(hex, 16));
            this.#i += 4;
            break;
          }
        default:
          this.#fail('invalid escape sequence');
      }
      this.#i++;
      runStart = this.#i;
    }
  }
}

/**
 * Converts a value returned by {@link parseStrictJson} back to plain JavaScript (numbers become
 * doubles, objects get the normal prototype, `__proto__` stays an own member).
 *
 * @param v - a parsed value.
 */
export function toPlainJson(v: JsonValue): unknown {
  if (v instanceof JsonNumber) return v.value;
  if (Array.isArray(v)) return v.map(toPlainJson);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) {
      Object.defineProperty(out, k, {
        value: toPlainJson(val),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return v;
}
