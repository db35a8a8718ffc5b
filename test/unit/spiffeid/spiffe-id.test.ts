import { describe, expect, it } from 'vitest';
import { IdentityError } from '../../../src/errors/index.js';
import {
  MAX_SPIFFE_ID_LENGTH,
  MAX_TRUST_DOMAIN_LENGTH,
  SpiffeId,
  TrustDomain,
} from '../../../src/spiffeid/index.js';

/** Runs `fn` and returns the IdentityError it throws (fails the test if it throws anything else or nothing). */
function errorOf(fn: () => unknown): IdentityError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IdentityError);
    return err as IdentityError;
  }
  throw new Error('expected an IdentityError, nothing was thrown');
}

const TD_CHARSET = 'abcdefghijklmnopqrstuvwxyz0123456789.-_';
const PATH_CHARSET = `${TD_CHARSET}ABCDEFGHIJKLMNOPQRSTUVWXYZ`;

describe('SpiffeId.parse: valid IDs', () => {
  const rows: Array<[string, string, string, string[]]> = [
    // input, trust domain, path, segments
    ['spiffe://example.org', 'example.org', '', []],
    ['spiffe://example.org/workload', 'example.org', '/workload', ['workload']],
    ['spiffe://example.org/ns/prod/sa/web', 'example.org', '/ns/prod/sa/web', ['ns', 'prod', 'sa', 'web']],
    ['spiffe://a', 'a', '', []],
    ['spiffe://1.2.3.4/x', '1.2.3.4', '/x', ['x']], // IP-looking trust domains are plain names
    ['spiffe://td_-.0/A-Z_a.z', 'td_-.0', '/A-Z_a.z', ['A-Z_a.z']],
    ['spiffe://td/...', 'td', '/...', ['...']], // only '.' and '..' are dot segments
    ['spiffe://td/.a/a./..b', 'td', '/.a/a./..b', ['.a', 'a.', '..b']],
    ['spiffe://td/spiffe', 'td', '/spiffe', ['spiffe']],
    ['spiffe://td/Case/CASE', 'td', '/Case/CASE', ['Case', 'CASE']], // paths are case-sensitive
  ];
  it.each(rows)('%s', (input, td, path, segments) => {
    const id = SpiffeId.parse(input);
    expect(id.trustDomain.name).toBe(td);
    expect(id.path).toBe(path);
    expect(id.segments()).toEqual(segments);
    expect(id.toString()).toBe(input);
    expect(id.isRoot()).toBe(path === '');
    expect(JSON.stringify({ id })).toBe(JSON.stringify({ id: input }));
  });

  it('paths differ by case', () => {
    expect(SpiffeId.parse('spiffe://td/A').equals(SpiffeId.parse('spiffe://td/a'))).toBe(false);
  });

  it('accepts a trust domain of exactly 255 bytes and rejects 256', () => {
    const td255 = 'a'.repeat(MAX_TRUST_DOMAIN_LENGTH);
    expect(SpiffeId.parse(`spiffe://${td255}/x`).trustDomain.name).toBe(td255);
    expect(errorOf(() => SpiffeId.parse(`spiffe://${td255}a/x`)).code).toBe('spiffeid-trust-domain-too-long');
  });

  it('accepts an ID of exactly 2048 bytes and rejects 2049', () => {
    const prefix = 'spiffe://example.org/';
    const exact = prefix + 'p'.repeat(MAX_SPIFFE_ID_LENGTH - prefix.length);
    expect(exact.length).toBe(2048);
    expect(SpiffeId.parse(exact).toString()).toBe(exact);
    const e = errorOf(() => SpiffeId.parse(`${exact}p`));
    expect(e.code).toBe('spiffeid-too-long');
    expect(e.message).toMatch(/at most 2048 bytes/);
  });
});

describe('SpiffeId.parse: one row per rule', () => {
  // name, input, code, substring of the message naming the rule
  const rows: Array<[string, string, string, string]> = [
    ['empty input', '', 'spiffeid-empty', 'must not be empty'],
    ['http scheme', 'http://example.org/x', 'spiffeid-wrong-scheme', "must start with 'spiffe://'"],
    ['uppercase scheme', 'SPIFFE://example.org/x', 'spiffeid-wrong-scheme', 'exactly lowercase'],
    ['mixed-case scheme', 'Spiffe://example.org/x', 'spiffeid-wrong-scheme', 'exactly lowercase'],
    ['single slash', 'spiffe:/example.org/x', 'spiffeid-wrong-scheme', "must start with 'spiffe://'"],
    ['no slash', 'spiffe:example.org', 'spiffeid-wrong-scheme', "must start with 'spiffe://'"],
    ['backslashes', 'spiffe:\\\\example.org\\x', 'spiffeid-wrong-scheme', "must start with 'spiffe://'"],
    ['scheme only', 'spiffe', 'spiffeid-wrong-scheme', "must start with 'spiffe://'"],
    ['no scheme', '://example.org', 'spiffeid-wrong-scheme', "must start with 'spiffe://'"],
    ['leading space', ' spiffe://example.org', 'spiffeid-wrong-scheme', "must start with 'spiffe://'"],
    ['bare name', 'example.org', 'spiffeid-wrong-scheme', "must start with 'spiffe://'"],
    [
      'missing trust domain, path',
      'spiffe:///path',
      'spiffeid-missing-trust-domain',
      'non-empty trust domain',
    ],
    ['missing trust domain', 'spiffe://', 'spiffeid-missing-trust-domain', 'non-empty trust domain'],
    ['port', 'spiffe://example.org:8080/x', 'spiffeid-port-not-allowed', 'must not carry a port'],
    ['empty port', 'spiffe://example.org:/x', 'spiffeid-port-not-allowed', 'must not carry a port'],
    ['user info', 'spiffe://user@example.org/x', 'spiffeid-userinfo-not-allowed', 'must not carry user info'],
    ['user info with password', 'spiffe://u:p@example.org/x', 'spiffeid-userinfo-not-allowed', 'user info'],
    ['query after path', 'spiffe://example.org/x?q=1', 'spiffeid-query-not-allowed', 'must not have a query'],
    [
      'query after trust domain',
      'spiffe://example.org?q',
      'spiffeid-query-not-allowed',
      'must not have a query',
    ],
    [
      'fragment after path',
      'spiffe://example.org/x#f',
      'spiffeid-fragment-not-allowed',
      'must not have a fragment',
    ],
    ['fragment after trust domain', 'spiffe://example.org#f', 'spiffeid-fragment-not-allowed', 'fragment'],
    ['percent in path', 'spiffe://example.org/%62', 'spiffeid-percent-encoding', 'percent-encoding'],
    [
      'percent in trust domain',
      'spiffe://%F0%9F%A4%AF/path',
      'spiffeid-percent-encoding',
      'percent-encoding',
    ],
    ['uppercase trust domain', 'spiffe://Example.org/x', 'spiffeid-bad-trust-domain-char', 'lowercase only'],
    ['IPv6 literal', 'spiffe://[::1]/x', 'spiffeid-bad-trust-domain-char', 'a-z 0-9 . - _'],
    ['space in trust domain', 'spiffe://exa mple/x', 'spiffeid-bad-trust-domain-char', 'a-z 0-9 . - _'],
    ['non-ASCII trust domain', 'spiffe://ex\u00e4mple/x', 'spiffeid-bad-trust-domain-char', 'U+00E4'],
    ['trailing slash', 'spiffe://example.org/', 'spiffeid-trailing-slash', "must not end with '/'"],
    [
      'trailing slash after path',
      'spiffe://example.org/x/',
      'spiffeid-trailing-slash',
      "must not end with '/'",
    ],
    ['empty segment', 'spiffe://example.org//x', 'spiffeid-empty-segment', 'empty segments'],
    ['only slashes', 'spiffe://example.org//', 'spiffeid-empty-segment', 'empty segments'],
    ['inner empty segment', 'spiffe://example.org/a//b', 'spiffeid-empty-segment', 'empty segments'],
    ['dot segment', 'spiffe://example.org/./x', 'spiffeid-dot-segment', "'.' or '..'"],
    ['dot-dot segment', 'spiffe://example.org/../x', 'spiffeid-dot-segment', "'.' or '..'"],
    ['trailing dot', 'spiffe://example.org/x/.', 'spiffeid-dot-segment', "'.' or '..'"],
    ['trailing dot-dot', 'spiffe://example.org/x/..', 'spiffeid-dot-segment', "'.' or '..'"],
    ['traversal that URL() would resolve', 'spiffe://example.org/a/../b', 'spiffeid-dot-segment', "'..'"],
    ['colon in path', 'spiffe://example.org/pa:th', 'spiffeid-bad-path-char', 'A-Z a-z 0-9 . - _'],
    ['at sign in path', 'spiffe://example.org/pa@th', 'spiffeid-bad-path-char', 'A-Z a-z 0-9 . - _'],
    ['backslash in path', 'spiffe://example.org/a\\b', 'spiffeid-bad-path-char', 'A-Z a-z 0-9 . - _'],
    ['space in path', 'spiffe://example.org/a b', 'spiffeid-bad-path-char', 'U+0020'],
    ['NUL in path', 'spiffe://example.org/a\u0000', 'spiffeid-bad-path-char', 'U+0000'],
    ['newline in path', 'spiffe://example.org/a\nb', 'spiffeid-bad-path-char', 'U+000A'],
    ['emoji in path', 'spiffe://example.org/\u{1F92F}', 'spiffeid-bad-path-char', 'U+1F92F'],
    ['too long', `spiffe://example.org/${'a'.repeat(3000)}`, 'spiffeid-too-long', 'at most 2048 bytes'],
    [
      'trust domain too long',
      `spiffe://${'a'.repeat(256)}`,
      'spiffeid-trust-domain-too-long',
      'at most 255 bytes',
    ],
  ];
  it.each(rows)('%s: %j → %s', (_name, input, code, rule) => {
    const e = errorOf(() => SpiffeId.parse(input));
    expect(e.code).toBe(code);
    expect(e.message.startsWith(`${code}: `)).toBe(true);
    expect(e.message).toContain(rule);
  });

  it('reports the position of the offending character', () => {
    const e = errorOf(() => SpiffeId.parse('spiffe://example.org/ok/b!d'));
    expect(e.code).toBe('spiffeid-bad-path-char');
    expect(e.details).toMatchObject({ position: 25, codePoint: 0x21 });
    expect(e.message).toContain("'!' (U+0021) at position 25");
  });

  it('never echoes control characters into the message', () => {
    const e = errorOf(() => SpiffeId.parse('spiffe://example.org/a\u001b[31mred'));
    expect([...e.message].some((ch) => ch.charCodeAt(0) < 0x20)).toBe(false);
  });

  it('rejects non-string input with an IdentityError', () => {
    for (const v of [undefined, null, 42, {}, [], Symbol('x')]) {
      expect(errorOf(() => SpiffeId.parse(v as unknown as string)).code).toBe('spiffeid-not-string');
    }
  });
});

// The named invalid IDs of go-spiffe's spiffeid tests (spiffe-rules.md §7), each with our code.
describe('SpiffeId.parse: named invalid IDs', () => {
  const named: Array<[string, string]> = [
    ['spiffe://trustdomain/', 'spiffeid-trailing-slash'],
    ['spiffe://trustdomain//', 'spiffeid-empty-segment'],
    ['spiffe://trustdomain//path', 'spiffeid-empty-segment'],
    ['spiffe://trustdomain/path/', 'spiffeid-trailing-slash'],
    ['spiffe://trustdomain/./', 'spiffeid-dot-segment'],
    ['spiffe://trustdomain/./path', 'spiffeid-dot-segment'],
    ['spiffe://trustdomain/..', 'spiffeid-dot-segment'],
    ['spiffe://trustdomain/../path', 'spiffeid-dot-segment'],
    ['spiffe://trustdomain/path/.', 'spiffeid-dot-segment'],
    ['spiffe://trustdomain/path/..', 'spiffeid-dot-segment'],
    ['spiffe://trustdomain/%62', 'spiffeid-percent-encoding'],
    ['spiffe://trustdomain/path%2F', 'spiffeid-percent-encoding'],
    ['spiffe://%62trustdomain', 'spiffeid-percent-encoding'],
    ['Spiffe://trustdomain', 'spiffeid-wrong-scheme'],
    ['SPIFFE://trustdomain', 'spiffeid-wrong-scheme'],
    ['spiffE://trustdomain', 'spiffeid-wrong-scheme'],
    ['spiffe:///path', 'spiffeid-missing-trust-domain'],
    ['spiffe://', 'spiffeid-missing-trust-domain'],
    ['spiffe:/path', 'spiffeid-wrong-scheme'],
    ['spiffe:path', 'spiffeid-wrong-scheme'],
    ['spiffe:', 'spiffeid-wrong-scheme'],
    ['s', 'spiffeid-wrong-scheme'],
    ['//trustdomain/path', 'spiffeid-wrong-scheme'],
    ['/path', 'spiffeid-wrong-scheme'],
    ['http://trustdomain', 'spiffeid-wrong-scheme'],
    ['spiffe://trustdomain:1', 'spiffeid-port-not-allowed'],
    ['spiffe://user@trustdomain', 'spiffeid-userinfo-not-allowed'],
    ['spiffe://trustdomain?query', 'spiffeid-query-not-allowed'],
    ['spiffe://trustdomain#fragment', 'spiffeid-fragment-not-allowed'],
    ['spiffe://trustdomain/path?query', 'spiffeid-query-not-allowed'],
    ['spiffe://trustdomain/path#fragment', 'spiffeid-fragment-not-allowed'],
    ['spiffe://Trustdomain/path', 'spiffeid-bad-trust-domain-char'],
    ['spiffe://trust$domain/path', 'spiffeid-bad-trust-domain-char'],
    ['spiffe://trustdomain/pa$th', 'spiffeid-bad-path-char'],
    ['spiffe://trustdomain/p!a$t&h', 'spiffeid-bad-path-char'],
    ['spiffe://trustdomain/elem[ent', 'spiffeid-bad-path-char'],
  ];
  it.each(named)('%j → %s', (input, code) => {
    expect(errorOf(() => SpiffeId.parse(input)).code).toBe(code);
  });
});

describe('per-byte sweep 0x00–0xFF', () => {
  const codeUnits = Array.from({ length: 256 }, (_, b) => b);
  const charCodes = new Set([
    'spiffeid-bad-trust-domain-char',
    'spiffeid-port-not-allowed',
    'spiffeid-userinfo-not-allowed',
    'spiffeid-percent-encoding',
    'spiffeid-query-not-allowed',
    'spiffeid-fragment-not-allowed',
  ]);

  it('trust domain characters: exactly a-z 0-9 . - _ are accepted (SpiffeId.parse)', () => {
    for (const b of codeUnits) {
      const c = String.fromCharCode(b);
      const input = `spiffe://ab${c}cd/path`;
      if (c === '/') {
        // '/' ends the trust domain: this is the valid ID spiffe://ab with path /cd/path.
        expect(SpiffeId.parse(input).trustDomain.name).toBe('ab');
        continue;
      }
      if (TD_CHARSET.includes(c)) {
        expect(SpiffeId.parse(input).trustDomain.name, `byte 0x${b.toString(16)}`).toBe(`ab${c}cd`);
      } else {
        const e = errorOf(() => SpiffeId.parse(input));
        expect(charCodes.has(e.code), `byte 0x${b.toString(16)} gave ${e.code}`).toBe(true);
        expect(e.details?.['position']).toBe(11);
      }
    }
  });

  it('trust domain characters: exactly a-z 0-9 . - _ are accepted (TrustDomain.parse)', () => {
    for (const b of codeUnits) {
      const c = String.fromCharCode(b);
      if (TD_CHARSET.includes(c)) {
        expect(TrustDomain.parse(`ab${c}cd`).name).toBe(`ab${c}cd`);
      } else {
        const e = errorOf(() => TrustDomain.parse(`ab${c}cd`));
        expect(
          charCodes.has(e.code) || e.code === 'spiffeid-bad-trust-domain-char',
          `byte 0x${b.toString(16)}`,
        ).toBe(true);
      }
    }
  });

  it('path characters: exactly A-Z a-z 0-9 . - _ (and / between segments) are accepted', () => {
    for (const b of codeUnits) {
      const c = String.fromCharCode(b);
      const input = `spiffe://td/ab${c}cd`;
      if (PATH_CHARSET.includes(c) || c === '/') {
        expect(SpiffeId.parse(input).toString(), `byte 0x${b.toString(16)}`).toBe(input);
      } else {
        const e = errorOf(() => SpiffeId.parse(input));
        expect(
          [
            'spiffeid-bad-path-char',
            'spiffeid-percent-encoding',
            'spiffeid-query-not-allowed',
            'spiffeid-fragment-not-allowed',
          ],
          `byte 0x${b.toString(16)}`,
        ).toContain(e.code);
        expect(e.details?.['position']).toBe(14);
      }
    }
  });

  it('single-character segments: every path character but . is a segment on its own', () => {
    for (const b of codeUnits) {
      const c = String.fromCharCode(b);
      const ok = PATH_CHARSET.includes(c) && c !== '.';
      if (ok) expect(SpiffeId.parse(`spiffe://td/${c}`).segments()).toEqual([c]);
      else expect(() => SpiffeId.parse(`spiffe://td/${c}`)).toThrow(IdentityError);
      if (ok) expect(SpiffeId.fromSegments('td', c).path).toBe(`/${c}`);
      else expect(() => SpiffeId.fromSegments('td', c)).toThrow(IdentityError);
    }
  });

  it('builder segments follow the same charset, and never accept /', () => {
    for (const b of codeUnits) {
      const c = String.fromCharCode(b);
      if (PATH_CHARSET.includes(c)) expect(SpiffeId.fromSegments('td', `ab${c}cd`).path).toBe(`/ab${c}cd`);
      else
        expect(() => SpiffeId.fromSegments('td', `ab${c}cd`), `byte 0x${b.toString(16)}`).toThrow(
          IdentityError,
        );
    }
  });
});

describe('builders', () => {
  it('fromSegments joins segments and accepts a TrustDomain, a name or a SPIFFE ID', () => {
    const expected = 'spiffe://example.org/a/b';
    expect(SpiffeId.fromSegments('example.org', 'a', 'b').toString()).toBe(expected);
    expect(SpiffeId.fromSegments(TrustDomain.parse('example.org'), 'a', 'b').toString()).toBe(expected);
    expect(SpiffeId.fromSegments('spiffe://example.org', 'a', 'b').toString()).toBe(expected);
    expect(SpiffeId.fromSegments('example.org').toString()).toBe('spiffe://example.org');
  });

  const badSegments: Array<[string, string[], string]> = [
    ['empty segment', ['a', ''], 'spiffeid-empty-segment'],
    ['dot', ['.'], 'spiffeid-dot-segment'],
    ['dot-dot', ['a', '..'], 'spiffeid-dot-segment'],
    ['slash inside', ['a/b'], 'spiffeid-bad-path-char'],
    ['leading slash', ['/a'], 'spiffeid-bad-path-char'],
    ['percent', ['%2F'], 'spiffeid-percent-encoding'],
    ['query', ['a?b'], 'spiffeid-query-not-allowed'],
    ['colon', ['a:b'], 'spiffeid-bad-path-char'],
  ];
  it.each(badSegments)('fromSegments rejects %s', (_n, segments, code) => {
    expect(errorOf(() => SpiffeId.fromSegments('example.org', ...segments)).code).toBe(code);
  });

  it('fromSegments names the segment at fault', () => {
    const e = errorOf(() => SpiffeId.fromSegments('example.org', 'ok', 'b:d'));
    expect(e.message).toContain('segment 1');
    expect(e.details).toMatchObject({ segment: 1, position: 1 });
  });

  it('fromSegments rejects non-string segments', () => {
    expect(errorOf(() => SpiffeId.fromSegments('td', 1 as unknown as string)).code).toBe(
      'spiffeid-not-string',
    );
  });

  it('fromSegments enforces the 2048-byte limit', () => {
    const seg = 'a'.repeat(1000);
    expect(SpiffeId.fromSegments('td', seg, seg).toString().length).toBe(2013);
    expect(errorOf(() => SpiffeId.fromSegments('td', seg, seg, 'b'.repeat(40))).code).toBe(
      'spiffeid-too-long',
    );
  });

  it('fromSegments rejects an invalid trust domain', () => {
    expect(errorOf(() => SpiffeId.fromSegments('Example.org', 'a')).code).toBe(
      'spiffeid-bad-trust-domain-char',
    );
  });

  it('fromPath accepts "" and absolute paths and applies the path rules', () => {
    expect(SpiffeId.fromPath('td', '').isRoot()).toBe(true);
    expect(SpiffeId.fromPath('td', '/a/b').segments()).toEqual(['a', 'b']);
    expect(errorOf(() => SpiffeId.fromPath('td', 'a/b')).code).toBe('spiffeid-path-not-absolute');
    expect(errorOf(() => SpiffeId.fromPath('td', '/')).code).toBe('spiffeid-trailing-slash');
    expect(errorOf(() => SpiffeId.fromPath('td', '//a')).code).toBe('spiffeid-empty-segment');
    expect(errorOf(() => SpiffeId.fromPath('td', '/a/./b')).code).toBe('spiffeid-dot-segment');
    expect(errorOf(() => SpiffeId.fromPath('td', '/a?b')).code).toBe('spiffeid-query-not-allowed');
    expect(errorOf(() => SpiffeId.fromPath('td', `/${'a'.repeat(2048)}`)).code).toBe('spiffeid-too-long');
  });

  it('constructors cannot be called directly', () => {
    const AnyId = SpiffeId as unknown as new (...a: unknown[]) => unknown;
    const AnyTd = TrustDomain as unknown as new (...a: unknown[]) => unknown;
    expect(errorOf(() => new AnyId(Symbol('x'), TrustDomain.parse('td'), '/../x')).code).toBe(
      'spiffeid-private-constructor',
    );
    expect(errorOf(() => new AnyTd(Symbol('x'), 'EVIL/..')).code).toBe('spiffeid-private-constructor');
  });

  it('instances are frozen', () => {
    const id = SpiffeId.parse('spiffe://td/a');
    expect(() => {
      (id as unknown as { path: string }).path = '/admin';
    }).toThrow(TypeError);
    expect(id.toString()).toBe('spiffe://td/a');
    expect(Object.isFrozen(id.trustDomain)).toBe(true);
  });
});

describe('comparisons', () => {
  const id = SpiffeId.parse('spiffe://example.org/a/b');

  it('equals compares IDs and strings byte for byte and never throws', () => {
    expect(id.equals(SpiffeId.fromSegments('example.org', 'a', 'b'))).toBe(true);
    expect(id.equals('spiffe://example.org/a/b')).toBe(true);
    expect(id.equals('spiffe://example.org/a/B')).toBe(false);
    expect(id.equals('spiffe://example.org/a/b/')).toBe(false);
    expect(id.equals('not an id')).toBe(false);
    expect(id.equals(SpiffeId.parse('spiffe://example.org/a'))).toBe(false);
    expect(id.equals({ toString: () => 'spiffe://example.org/a/b' } as unknown as SpiffeId)).toBe(false);
  });

  it('memberOf takes a TrustDomain, a name or a SPIFFE ID string', () => {
    expect(id.memberOf('example.org')).toBe(true);
    expect(id.memberOf(TrustDomain.parse('example.org'))).toBe(true);
    expect(id.memberOf('spiffe://example.org')).toBe(true);
    expect(id.memberOf('example.com')).toBe(false);
    expect(id.memberOf('sub.example.org')).toBe(false);
    expect(id.memberOf('org')).toBe(false);
    expect(errorOf(() => id.memberOf('EXAMPLE.org')).code).toBe('spiffeid-bad-trust-domain-char');
  });
});
