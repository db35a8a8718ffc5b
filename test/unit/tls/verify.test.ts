/**
 * The peer check under the TLS helpers: verification results are cached per bundle set and chain,
 * but a cached result never outlives the chain's validity or the bundle set it was checked against,
 * and the authorizer runs on every call.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Authorizer, authorizeAny, authorizeId } from '../../../src/tls/index.js';
import { verifyPeerChain } from '../../../src/tls/verify.js';
import { type CaMaterial, createCa, issueSvid, type SvidMaterial } from '../../fixtures/pki.js';
import { bundlesOf } from './helpers.js';

let root: CaMaterial;
let other: CaMaterial;
let svid: SvidMaterial;

beforeAll(async () => {
  root = await createCa({ trustDomain: 'example.org' });
  other = await createCa({ trustDomain: 'example.org' });
  svid = await issueSvid(root, 'spiffe://example.org/w', {
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
  });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('verifyPeerChain', () => {
  it('a cached result is not used once the leaf expired', () => {
    const bundles = bundlesOf(root);
    expect(verifyPeerChain(svid.chainDers, bundles, authorizeAny(), 'client').spiffeId.toString()).toBe(
      'spiffe://example.org/w',
    );
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 2 * 3600_000);
    expect(() => verifyPeerChain(svid.chainDers, bundles, authorizeAny(), 'client')).toThrow(
      expect.objectContaining({
        code: 'tls-peer-untrusted',
        details: expect.objectContaining({ reason: 'x509svid-expired' }),
      }),
    );
  });

  it('a cached result is not used with another bundle set', () => {
    expect(() => verifyPeerChain(svid.chainDers, bundlesOf(root), authorizeAny(), 'client')).not.toThrow();
    expect(() => verifyPeerChain(svid.chainDers, bundlesOf(other), authorizeAny(), 'client')).toThrow(
      expect.objectContaining({ code: 'tls-peer-untrusted' }),
    );
  });

  it('the authorizer runs on every call, cached or not', () => {
    const bundles = bundlesOf(root);
    let calls = 0;
    const counting: Authorizer = {
      description: 'count',
      authorize: () => {
        calls++;
        return { allowed: true };
      },
    };
    verifyPeerChain(svid.chainDers, bundles, counting, 'client');
    verifyPeerChain(svid.chainDers, bundles, counting, 'client');
    expect(calls).toBe(2);
    expect(() =>
      verifyPeerChain(svid.chainDers, bundles, authorizeId('spiffe://example.org/x'), 'client'),
    ).toThrow(expect.objectContaining({ code: 'tls-peer-unauthorized' }));
  });

  it('cache poisoning through the chain: an authorizer cannot change the chain later callers see', () => {
    const bundles = bundlesOf(root);
    const seen: number[] = [];
    const tampering: Authorizer = {
      description: 'tampering',
      authorize: (_peer, chain) => {
        seen.push(chain.length);
        try {
          (chain as unknown[]).length = 0;
        } catch {
          // frozen: the mutation is refused
        }
        return { allowed: true };
      },
    };
    const first = verifyPeerChain(svid.chainDers, bundles, tampering, 'client');
    const second = verifyPeerChain(svid.chainDers, bundles, tampering, 'client');
    expect(seen).toEqual([2, 2]);
    expect(first.chain.length).toBe(2);
    expect(second.chain.length).toBe(2);
    expect(Object.isFrozen(second.chain)).toBe(true);
  });

  it('no certificate is its own refusal', () => {
    expect(() => verifyPeerChain([], bundlesOf(root), authorizeAny(), 'server')).toThrow(
      expect.objectContaining({ code: 'tls-peer-no-certificate' }),
    );
  });
});
