import type { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isIdentityError } from '../../../src/errors/index.js';
import { matchPathPrefix, SpiffeId } from '../../../src/spiffeid/index.js';
import {
  type Authorizer,
  authorizeAll,
  authorizeAny,
  authorizeEither,
  authorizeId,
  authorizeMatcher,
  authorizeMemberOf,
  authorizeOneOf,
  authorizePeer,
} from '../../../src/tls/index.js';

const id = (s: string) => SpiffeId.parse(s);
const chain: readonly X509Certificate[] = [];
const run = (a: Authorizer, s: string) => a.authorize(id(s), chain);

describe('authorizers', () => {
  it('authorizeAny allows every verified ID', () => {
    expect(run(authorizeAny(), 'spiffe://a.org/x').allowed).toBe(true);
    expect(run(authorizeAny(), 'spiffe://b.org/y/z').allowed).toBe(true);
  });

  it('authorizeId allows exactly one ID, byte for byte', () => {
    const a = authorizeId('spiffe://example.org/web');
    expect(run(a, 'spiffe://example.org/web').allowed).toBe(true);
    const denied = run(a, 'spiffe://example.org/web2');
    expect(denied).toEqual({
      allowed: false,
      reason: 'spiffe://example.org/web2 is not spiffe://example.org/web',
    });
    expect(run(a, 'spiffe://example.org/Web').allowed).toBe(false);
    expect(run(a, 'spiffe://other.org/web').allowed).toBe(false);
  });

  it('authorizeOneOf lists the allowed IDs in its reason', () => {
    const a = authorizeOneOf('spiffe://td/a', id('spiffe://td/b'));
    expect(run(a, 'spiffe://td/a').allowed).toBe(true);
    expect(run(a, 'spiffe://td/b').allowed).toBe(true);
    expect(run(a, 'spiffe://td/x')).toEqual({
      allowed: false,
      reason: 'spiffe://td/x not in [spiffe://td/a, spiffe://td/b]',
    });
  });

  it('authorizeOneOf() with no IDs allows nobody', () => {
    expect(run(authorizeOneOf(), 'spiffe://td/a').allowed).toBe(false);
  });

  it('authorizeMemberOf allows one trust domain only', () => {
    const a = authorizeMemberOf('spiffe://example.org');
    expect(run(a, 'spiffe://example.org/any/path').allowed).toBe(true);
    expect(run(a, 'spiffe://example.org.evil/x')).toEqual({
      allowed: false,
      reason: 'spiffe://example.org.evil/x is not a member of trust domain example.org',
    });
  });

  it('authorizeMatcher uses the matcher and fails closed when it throws or returns non-true', () => {
    const a = authorizeMatcher(matchPathPrefix('example.org', '/ns/prod'), 'prod namespace');
    expect(run(a, 'spiffe://example.org/ns/prod/web').allowed).toBe(true);
    expect(run(a, 'spiffe://example.org/ns/prodx')).toEqual({
      allowed: false,
      reason: 'spiffe://example.org/ns/prodx rejected by prod namespace',
    });
    const throwing = authorizeMatcher(() => {
      throw new Error('boom');
    });
    const r = run(throwing, 'spiffe://td/a');
    expect(r.allowed).toBe(false);
    expect(!r.allowed && r.reason).toContain('threw: boom');
    // a truthy non-boolean is not an allow
    expect(run(authorizeMatcher((() => 1) as unknown as () => boolean), 'spiffe://td/a').allowed).toBe(false);
  });

  it('authorizeAll needs every part; authorizeEither needs one and lists every denial', () => {
    const prod = authorizeMatcher(matchPathPrefix('example.org', '/prod'), 'prod');
    const both = authorizeAll(authorizeMemberOf('example.org'), prod);
    expect(run(both, 'spiffe://example.org/prod/a').allowed).toBe(true);
    expect(run(both, 'spiffe://example.org/dev/a')).toEqual({
      allowed: false,
      reason: 'spiffe://example.org/dev/a rejected by prod',
    });
    const either = authorizeEither(authorizeId('spiffe://a.org/x'), authorizeMemberOf('b.org'));
    expect(run(either, 'spiffe://b.org/y').allowed).toBe(true);
    expect(run(either, 'spiffe://c.org/z')).toEqual({
      allowed: false,
      reason:
        'spiffe://c.org/z is not spiffe://a.org/x; and spiffe://c.org/z is not a member of trust domain b.org',
    });
    expect(run(authorizeAll(), 'spiffe://a.org/x').allowed).toBe(false);
    expect(run(authorizeEither(), 'spiffe://a.org/x').allowed).toBe(false);
  });

  it('a custom authorizer that throws or returns garbage refuses inside compositions', () => {
    const throwing: Authorizer = {
      description: 'db lookup',
      authorize() {
        throw new Error('db down');
      },
    };
    const garbage = {
      description: 'garbage',
      authorize: () => ({ allowed: 'yes' }),
    } as unknown as Authorizer;
    expect(run(authorizeEither(throwing), 'spiffe://a.org/x').allowed).toBe(false);
    expect(run(authorizeAll(authorizeAny(), garbage), 'spiffe://a.org/x').allowed).toBe(false);
    expect(() => authorizePeer(throwing, id('spiffe://a.org/x'), chain)).toThrow(/db down/);
  });

  it('authorizePeer throws tls-peer-unauthorized naming the rule', () => {
    const a = authorizeOneOf('spiffe://td/a', 'spiffe://td/b');
    expect(() => authorizePeer(a, id('spiffe://td/a'), chain)).not.toThrow();
    try {
      authorizePeer(a, id('spiffe://td/x'), chain);
      expect.unreachable();
    } catch (err) {
      expect(isIdentityError(err, 'tls-peer-unauthorized')).toBe(true);
      expect((err as Error).message).toBe(
        'tls-peer-unauthorized: spiffe://td/x not in [spiffe://td/a, spiffe://td/b]',
      );
    }
  });

  it('bad arguments are IdentityErrors, not crashes', () => {
    for (const f of [
      () => authorizeId('spiffe://td/a/../b'),
      () => authorizeId(42 as unknown as string),
      () => authorizeOneOf('https://td/a'),
      () => authorizeMemberOf('Example.org'),
      () => authorizeMatcher('x' as unknown as () => boolean),
      () => authorizeAll({} as Authorizer),
      () => authorizeEither(null as unknown as Authorizer),
    ]) {
      expect(f).toThrow(expect.objectContaining({ code: 'tls-invalid-argument' }));
    }
  });
});
