// Our host built-ins against OPA's own (Go) implementations: the same Rego is compiled to wasm
// and run by our engine, and evaluated by the real `opa eval`, for many inputs including edge
// cases. Every rule's value must be identical (both undefined counts as identical).
import { createHmac } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { PolicyEngine } from '../../../src/policy/index.js';
import { opaEvalMany } from '../../rig/index.js';
import { compileWithCapabilities } from './helpers.js';

const RULES: Record<string, string> = {
  jwt: 'io.jwt.decode(input.jwt)',
  prefix: 'strings.any_prefix_match(input.s, input.p)',
  prefix_set: 'strings.any_prefix_match({x | some x in input.s}, input.p)',
  suffix: 'strings.any_suffix_match(input.s, input.p)',
  cidr: 'net.cidr_is_valid(input.c)',
  cmp: 'semver.compare(input.v1, input.v2)',
  valid: 'semver.is_valid(input.v1)',
  bytes: 'units.parse_bytes(input.b)',
  bytes_text: 'json.marshal(units.parse_bytes(input.b))',
  sha: 'crypto.sha256(input.s)',
  hx: 'hex.encode(input.s)',
};

const REGO = `package b\n\n${Object.entries(RULES)
  .map(([name, expr]) => `${name} := ${expr}`)
  .join('\n')}\n`;

const b64u = (s: string | Uint8Array): string => Buffer.from(s).toString('base64url');

function jwt(header: unknown, payload: unknown, sig: Uint8Array = Buffer.from('sig-bytes')): string {
  return `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}.${b64u(sig)}`;
}

function hs256(header: Record<string, unknown>, payload: unknown): string {
  const signing = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  return `${signing}.${createHmac('sha256', 'secret').update(signing).digest('base64url')}`;
}

const inner = hs256({ alg: 'HS256', typ: 'JWT' }, { sub: 'spiffe://example.org/agent/a1', aud: ['teg'] });

const jwtInputs: unknown[] = [
  inner,
  // A number beyond 2^53 in the payload, written as JSON text.
  `${b64u('{"alg":"none"}')}.${b64u('{"n":12345678901234567890,"s":"héllo 𝄞","nested":{"a":[1,2,null,true]}}')}.${b64u('sig')}`,
  // padded base64url
  `${Buffer.from('{"alg":"HS256"}').toString('base64url')}=.${b64u('{"a":1}')}.${b64u('x')}`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}.`,
  `${b64u('not json')}.${b64u('{"a":1}')}.${b64u('x')}`,
  `${b64u('{"alg":"HS256"}')}.${b64u('[1,2]')}.${b64u('x')}`,
  `${b64u('{"alg":"HS256"}')}.${b64u('"str"')}.${b64u('x')}`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1} trailing')}.${b64u('x')}`,
  jwt({ alg: 'RSA-OAEP', enc: 'A256GCM' }, { a: 1 }),
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}.${b64u('x')}.${b64u('y')}`,
  'nodots',
  '',
  '...',
  42,
  null,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}.!!!`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}.ab+/`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}.abcde`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}.YQ=`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}.YQ==`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}.YQ===`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}.Y=Q=`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}.YW\nJj`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}.YWJ`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1}')}.YWI`,
  `${b64u('{"alg":"HS256"}')}.${b64u('{"a":1, "a":2}')}.${b64u('x')}`,
  `${b64u('{"alg":"HS256"}')}.${b64u(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]))}.${b64u('x')}`,
  // nested JWT (cty: JWT), quoted and unquoted
  `${b64u('{"alg":"HS256","cty":"JWT"}')}.${b64u(`"${inner}"`)}.${b64u('outer')}`,
  `${b64u('{"alg":"HS256","cty":"JWT"}')}.${b64u(`'${inner}'`)}.${b64u('outer')}`,
  `${b64u('{"alg":"HS256","cty":"JWT"}')}.${b64u(inner)}.${b64u('outer')}`,
  `${b64u('{"alg":"HS256","cty":"JWT"}')}.${b64u('"garbage"')}.${b64u('outer')}`,
  `${b64u('{"alg":"HS256","cty":"json"}')}.${b64u('{"a":1}')}.${b64u('x')}`,
  hs256({ alg: 'HS256', kid: 'k1', typ: 'JWT' }, { exp: 1_900_000_000, iat: 1.5, scope: 'a b' }),
].map((t) => ({ jwt: t }));

const strValues: unknown[] = [
  'abc',
  '',
  'ab',
  'xyz',
  ['abc', 'xyz'],
  [],
  ['a', 1],
  5,
  { a: 1 },
  ['', 'q'],
  ['zab'],
];
const prefixInputs: unknown[] = [];
for (const s of strValues) {
  for (const p of ['a', 'ab', 'c', 'bc', '', ['x', 'ab'], [], ['q', 'z'], [1], 7])
    prefixInputs.push({ s, p });
}

const cidrInputs: unknown[] = [
  '10.0.0.0/8',
  '10.0.0.0/33',
  '10.0.0.0/32',
  '10.0.0.0/0',
  '10.0.0.0/08',
  '10.0.0.0/0000000000008',
  '10.0.0.0/99999999999999999999',
  '10.0.0.0/-1',
  '10.0.0.0/+8',
  '10.0.0.0/',
  '10.0.0.0',
  '10.0.0/8',
  '10.0.0.0.0/8',
  '010.0.0.0/8',
  '0.0.0.0/0',
  '256.0.0.0/8',
  '1.2.3.4%eth0/8',
  '::/0',
  '::/128',
  '::/129',
  '::1/128',
  '2001:db8::/32',
  '2001:DB8::/32',
  '2001:db8::1::/64',
  '2001:db8:0:0:0:0:0:0/64',
  '2001:db8:0:0:0:0:0:0:1/64',
  '2001:db8::0:0:0:0:0:0/64',
  '::ffff:1.2.3.4/96',
  '::ffff:1.2.3.4/129',
  '::ffff:01.2.3.4/96',
  '1:2:3:4:5:6:1.2.3.4/64',
  '1:2:3:4:5:6:7:1.2.3.4/64',
  '::1.2.3.4/64',
  '1::1.2.3.4/64',
  '1::1.2.3/64',
  '1.2.3.4::/64',
  'fe80::1%eth0/64',
  'fe80::1%/64',
  '12345::/16',
  '1:2:3:4:5:6:7:8/64',
  '1:2:3:4:5:6:7:8:9/64',
  ':1::/64',
  '1:/64',
  '1::/64',
  ':::/64',
  ' 10.0.0.0/8',
  '10.0.0.0/8 ',
  '[::1]/128',
  'g::/16',
  '',
  '/',
  5,
  null,
  ['10.0.0.0/8'],
].map((c) => ({ c }));

const versions = [
  '1.2.3',
  'v1.2.3',
  '1.2.3-alpha',
  '1.2.3-alpha.1',
  '1.2.3-alpha.beta',
  '1.2.3-beta.2',
  '1.2.3-beta.11',
  '1.2.3-rc.1',
  '1.2.3+build.5',
  '1.2.3-alpha+b',
  '1.2.4',
  '1.10.0',
  '2.0.0',
  '0.0.0',
  '1.2.3-x-y',
  '1.2.3-99999999999999999999',
  '9223372036854775807.0.0',
];
const invalidVersions: unknown[] = [
  '01.2.3',
  '1.02.3',
  '1.2',
  '1.2.3.4',
  '',
  '1.2.3-',
  '1.2.3+',
  '1.2.3-01',
  '1.2.3--',
  '-1.2.3',
  '+1.2.3',
  '1.2.3-a..b',
  'vv1.2.3',
  'V1.2.3',
  '9223372036854775808.0.0',
  '1.+2.3',
  '1.2.3-α',
  ' 1.2.3',
  '1.2.3-0a',
  '1.2.3+x.y-z',
  7,
  null,
];
const semverInputs: unknown[] = [];
for (const a of versions) for (const b of versions) semverInputs.push({ v1: a, v2: b });
for (const a of invalidVersions) semverInputs.push({ v1: a, v2: '1.2.3' }, { v1: '1.2.3', v2: a });

const byteInputs: unknown[] = [
  '10',
  '10KB',
  '10kb',
  '10K',
  '10KiB',
  '10ki',
  '1.5MB',
  '1.1kb',
  '0.3mib',
  '3.3gib',
  '0.1',
  '1e3',
  '1e3kb',
  '1E3KB',
  '1.5e3MB',
  '2e6GiB',
  '1e',
  '1e+',
  '1e+3',
  '1e-3kb',
  '1e-30',
  '1e-7',
  '1e7',
  '1e1234567',
  '1e300eb',
  '1e30',
  '1.23456789e40',
  '-5kb',
  '+5kb',
  '5 kb',
  '5"kb"',
  'kb',
  '',
  '.5kb',
  '5.kb',
  '.kb',
  '1..2kb',
  '0x10',
  '10XB',
  '10B',
  '10\tkb',
  '9007199254740993',
  '18446744073709551617',
  '123456789012345678901234567890',
  '0.0000001kb',
  '1.1e-2mb',
  '999999999999999999999999eb',
  '1e6KB',
  '4.7e-1ti',
  '5e-1e',
  '1e5e3',
  '7pib',
  '7PiB',
  '7p',
  '3ei',
  '12345.6789kib',
  '0.30000000000000004kb',
  '1-2kb',
  '-0',
  '10\u212Ab',
  10,
  null,
].map((b) => ({ b }));

const shaInputs: unknown[] = ['', 'abc', 'héllo', '𝄞 clef', 'line\nbreak', 5, ['a']].map((s) => ({ s }));

let engine: PolicyEngine;

beforeAll(async () => {
  const bundle = await compileWithCapabilities(
    { 'b.rego': REGO },
    Object.keys(RULES).map((r) => `b/${r}`),
  );
  engine = await PolicyEngine.fromBundle(bundle);
  return () => engine.close();
});

/** JSON with object keys sorted, so that key order (not significant in Rego) is ignored. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    typeof x === 'object' && x !== null && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : x,
  );
}

async function differential(inputs: readonly unknown[], rules: readonly string[]): Promise<void> {
  const expected = (await opaEvalMany({ 'b.rego': REGO }, 'data.b', inputs)) as (
    | Record<string, unknown>
    | undefined
  )[];
  const mismatches: string[] = [];
  inputs.forEach((input, i) => {
    for (const rule of rules) {
      const ours = engine.evaluate(`b/${rule}`, input).result;
      const theirs = expected[i]?.[rule];
      if (canonical(ours) !== canonical(theirs)) {
        mismatches.push(
          `${rule}(${JSON.stringify(input)}): ours ${JSON.stringify(ours)}, opa ${JSON.stringify(theirs)}`,
        );
      }
    }
  });
  expect(mismatches).toEqual([]);
}

describe('host built-ins match opa eval', () => {
  it(`io.jwt.decode (${jwtInputs.length} tokens)`, async () => {
    await differential(jwtInputs, ['jwt']);
  });

  it(`strings.any_prefix_match / any_suffix_match (${prefixInputs.length} pairs)`, async () => {
    await differential(prefixInputs, ['prefix', 'prefix_set', 'suffix']);
  });

  it(`net.cidr_is_valid (${cidrInputs.length} strings)`, async () => {
    await differential(cidrInputs, ['cidr']);
  });

  it(`semver.compare / semver.is_valid (${semverInputs.length} pairs)`, async () => {
    await differential(semverInputs, ['cmp', 'valid']);
  });

  it(`units.parse_bytes (${byteInputs.length} strings)`, async () => {
    await differential(byteInputs, ['bytes', 'bytes_text']);
  });

  it(`crypto.sha256 / hex.encode (${shaInputs.length} strings)`, async () => {
    await differential(shaInputs, ['sha', 'hx']);
  });
});
