import type { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { BundleSet, JwtBundle, SpiffeBundle, X509Bundle } from '../../../src/bundle/index.js';
import { IdentityError } from '../../../src/errors/index.js';
import { TrustDomain } from '../../../src/spiffeid/index.js';
import { makeCa } from './certs.js';
import { makeKey, type TestKey } from './keys.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IdentityError);
    return (err as IdentityError).code;
  }
  return 'no error';
}

let caA: { cert: X509Certificate };
let caB: { cert: X509Certificate };
let key: TestKey;

beforeAll(async () => {
  [caA, caB] = await Promise.all([makeCa('a.test'), makeCa('b.test')]);
  key = makeKey('P-256');
});

describe('BundleSet', () => {
  it('looks bundles up by trust domain, never across trust domains', () => {
    const xa = X509Bundle.fromAuthorities('a.test', [caA.cert]);
    const xb = X509Bundle.fromAuthorities('b.test', [caB.cert]);
    const jb = JwtBundle.fromAuthorities('b.test', { k: key.jwk });
    const set = new BundleSet(xa, xb, jb);
    expect(set.getX509Bundle('a.test')).toBe(xa);
    expect(set.getX509Bundle(TrustDomain.parse('b.test'))).toBe(xb);
    expect(set.getX509Bundle('spiffe://b.test/workload')).toBe(xb);
    expect(set.getX509Bundle('c.test')).toBeUndefined();
    expect(set.getJwtBundle('b.test')).toBe(jb);
    expect(set.getJwtBundle('a.test')).toBeUndefined();
    expect(set.getX509Bundle('a.test')?.hasAuthority(caB.cert)).toBe(false);
    expect(set.trustDomains().map((t) => t.name)).toEqual(['a.test', 'b.test']);
    expect(set.x509Bundles).toEqual([xa, xb]);
    expect(set.jwtBundles).toEqual([jb]);
  });

  it('a SpiffeBundle contributes both its X.509 and its JWT bundle', () => {
    const sb = SpiffeBundle.fromParts('a.test', {
      x509: X509Bundle.fromAuthorities('a.test', [caA.cert]),
      jwt: JwtBundle.fromAuthorities('a.test', { k: key.jwk }),
    });
    const set = new BundleSet(sb);
    expect(set.getX509Bundle('a.test')).toBe(sb.x509Bundle());
    expect(set.getJwtBundle('a.test')).toBe(sb.jwtBundle());
    expect(set.trustDomains().map((t) => t.name)).toEqual(['a.test']);
  });

  it('an empty set finds nothing', () => {
    const set = new BundleSet();
    expect(set.getX509Bundle('a.test')).toBeUndefined();
    expect(set.getJwtBundle('a.test')).toBeUndefined();
    expect(set.trustDomains()).toEqual([]);
  });

  it('rejects two bundles of one kind for one trust domain', () => {
    const xa = X509Bundle.fromAuthorities('a.test', [caA.cert]);
    const xa2 = X509Bundle.fromAuthorities('a.test', [caB.cert]);
    const ja = JwtBundle.fromAuthorities('a.test', {});
    const sa = SpiffeBundle.fromParts('a.test', {});
    expect(codeOf(() => new BundleSet(xa, xa2))).toBe('bundle-set-duplicate-trust-domain');
    expect(codeOf(() => new BundleSet(xa, xa))).toBe('bundle-set-duplicate-trust-domain');
    expect(codeOf(() => new BundleSet(ja, JwtBundle.fromAuthorities('a.test', {})))).toBe(
      'bundle-set-duplicate-trust-domain',
    );
    expect(codeOf(() => new BundleSet(sa, xa))).toBe('bundle-set-duplicate-trust-domain');
    expect(codeOf(() => new BundleSet(ja, sa))).toBe('bundle-set-duplicate-trust-domain');
    expect(codeOf(() => new BundleSet(xa, ja))).toBe('no error');
  });

  it('rejects anything that is not a bundle', () => {
    for (const v of [null, undefined, {}, 'a.test', caA.cert]) {
      expect(codeOf(() => new BundleSet(v as unknown as X509Bundle))).toBe('bundle-invalid-argument');
    }
  });

  it('rejects an invalid trust domain string on lookup', () => {
    const set = new BundleSet(X509Bundle.fromAuthorities('a.test', [caA.cert]));
    expect(codeOf(() => set.getX509Bundle('A.test'))).toBe('spiffeid-bad-trust-domain-char');
    expect(codeOf(() => set.getJwtBundle(''))).toBe('spiffeid-missing-trust-domain');
  });

  it('is immutable', () => {
    const set = new BundleSet(X509Bundle.fromAuthorities('a.test', [caA.cert]));
    expect(Object.isFrozen(set)).toBe(true);
    expect(() => (set.x509Bundles as X509Bundle[]).push(X509Bundle.fromAuthorities('b.test', []))).toThrow(
      TypeError,
    );
    set.trustDomains().pop();
    expect(set.trustDomains()).toHaveLength(1);
  });
});
