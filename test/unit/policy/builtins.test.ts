// Host built-ins called directly. Their agreement with OPA's Go implementations is checked by the
// differential test (test/integration/policy/builtins-differential.test.ts); here: the parts
// opa eval cannot judge (time, uuid, spiffe.parse_id, exact big results, bounds).
import { describe, expect, it } from 'vitest';
import { scaleDecimal } from '../../../src/policy/bigfloat.js';
import {
  BuiltinInputError,
  createHostBuiltins,
  type EvaluationScope,
  HOST_BUILTINS,
} from '../../../src/policy/builtins.js';
import { SpiffeId } from '../../../src/spiffeid/index.js';

const text = (v: unknown): string => Buffer.from(v as ArrayBuffer).toString('utf8');

function setup(clock: () => bigint = () => 1_734_567_890_123_456_789n) {
  const scope: EvaluationScope = { nowNs: undefined, uuids: undefined };
  return { scope, b: createHostBuiltins(scope, clock) };
}

function call(name: string, ...args: unknown[]): unknown {
  const fn = setup().b[name];
  if (fn === undefined) throw new Error(`no ${name}`);
  return fn(...args);
}

describe('host built-ins', () => {
  it('lists the required built-ins and spiffe.parse_id', () => {
    for (const n of [
      'time.now_ns',
      'io.jwt.decode',
      'strings.any_prefix_match',
      'net.cidr_is_valid',
      'semver.compare',
      'units.parse_bytes',
      'uuid.rfc4122',
      'spiffe.parse_id',
    ]) {
      expect(HOST_BUILTINS).toContain(n);
    }
  });

  it('time.now_ns is exact (beyond 2^53) and fixed within one evaluation', () => {
    let t = 1_734_567_890_123_456_789n;
    const { scope, b } = setup(() => t++);
    const first = text(b['time.now_ns']?.());
    expect(first).toBe('1734567890123456789');
    expect(text(b['time.now_ns']?.())).toBe(first);
    scope.nowNs = undefined; // the engine resets the scope between evaluations
    expect(text(b['time.now_ns']?.())).toBe('1734567890123456790');
  });

  it('uuid.rfc4122 is a v4 UUID, stable per key within one evaluation', () => {
    const { scope, b } = setup();
    const u = b['uuid.rfc4122'];
    const a1 = u?.('a') as string;
    expect(a1).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(u?.('a')).toBe(a1);
    expect(u?.('b')).not.toBe(a1);
    scope.uuids = undefined;
    expect(u?.('a')).not.toBe(a1);
  });

  it('spiffe.parse_id splits a valid ID and refuses an invalid one', () => {
    expect(call('spiffe.parse_id', 'spiffe://example.org/agent/alice_at_example_dot_com')).toEqual({
      trust_domain: 'example.org',
      path: '/agent/alice_at_example_dot_com',
      segments: ['agent', 'alice_at_example_dot_com'],
    });
    expect(call('spiffe.parse_id', 'spiffe://example.org')).toEqual({
      trust_domain: 'example.org',
      path: '',
      segments: [],
    });
    for (const bad of [
      'spiffe://example.org/a/../b',
      'SPIFFE://example.org/a',
      'spiffe://example.org/a/',
      'https://x/y',
      5,
    ]) {
      expect(() => call('spiffe.parse_id', bad)).toThrow(BuiltinInputError);
    }
    // Agrees with the SpiffeId parser on what it accepts.
    const id = SpiffeId.parse('spiffe://td.example/ns/prod/sa/web');
    expect(call('spiffe.parse_id', id.toString())).toEqual({
      trust_domain: id.trustDomain.name,
      path: id.path,
      segments: id.segments(),
    });
  });

  it('units.parse_bytes returns exact integers as JSON text', () => {
    expect(text(call('units.parse_bytes', '1.1kb'))).toBe('1100');
    expect(text(call('units.parse_bytes', '1ei'))).toBe('1152921504606846976');
    expect(text(call('units.parse_bytes', '18446744073709551617'))).toBe('18446744073709551616');
    expect(() => call('units.parse_bytes', '10 kb')).toThrow(/spaces/);
    expect(() => call('units.parse_bytes', '10xb')).toThrow(/not recognized/);
    expect(() => call('units.parse_bytes', '1e1234567')).toThrow(/exponent/);
  });

  it('units.parse_bytes knows every decimal and binary unit', () => {
    const prefixes = ['k', 'm', 'g', 't', 'p', 'e'];
    expect(text(call('units.parse_bytes', '7'))).toBe('7');
    prefixes.forEach((p, i) => {
      const decimal = (1000n ** BigInt(i + 1)).toString();
      const binary = (1024n ** BigInt(i + 1)).toString();
      expect(text(call('units.parse_bytes', `1${p}b`))).toBe(decimal);
      expect(text(call('units.parse_bytes', `1${p.toUpperCase()}`))).toBe(decimal);
      expect(text(call('units.parse_bytes', `1${p}iB`))).toBe(binary);
      expect(text(call('units.parse_bytes', `1${p}i`))).toBe(binary);
    });
    expect(() => call('units.parse_bytes', '1zb')).toThrow(/not recognized/);
  });

  it('units.parse_bytes refuses results beyond 2^1100 (OPA has no bound)', () => {
    expect(scaleDecimal('1e330', 1n)).toBeDefined();
    expect(scaleDecimal('1e400', 1n)).toBeUndefined();
    expect(() => call('units.parse_bytes', '1e400')).toThrow(BuiltinInputError);
    expect(scaleDecimal('1e-999999', 1n << 60n)).toBe(0n);
  });

  it('io.jwt.decode returns header, payload and hex signature', () => {
    const tok = `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}.${Buffer.from([1, 2, 255]).toString('base64url')}`;
    expect(call('io.jwt.decode', tok)).toEqual([{ alg: 'HS256' }, { sub: 'x' }, '0102ff']);
    expect(() => call('io.jwt.decode', 'a.b')).toThrow(/3 sections/);
  });

  it('io.jwt.decode bounds nesting', () => {
    let tok = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.`;
    for (let i = 0; i < 20; i++) {
      tok = `${Buffer.from('{"cty":"JWT"}').toString('base64url')}.${Buffer.from(tok).toString('base64url')}.`;
    }
    expect(() => call('io.jwt.decode', tok)).toThrow(/too deep/);
  });

  it('type errors are input errors, boolean checks are false', () => {
    expect(() => call('strings.any_prefix_match', 1, 'a')).toThrow(BuiltinInputError);
    expect(() => call('strings.any_suffix_match', 'a', ['b', 2])).toThrow(BuiltinInputError);
    expect(() => call('semver.compare', '1.0.0', null)).toThrow(BuiltinInputError);
    expect(call('net.cidr_is_valid', 7)).toBe(false);
    expect(call('semver.is_valid', {})).toBe(false);
  });
});
