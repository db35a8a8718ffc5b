/**
 * requireJwtSvid: what the verified caller carries, for tokens of the local and of a federated
 * trust domain.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BundleSet } from '../../../src/bundle/index.js';
import { requireJwtSvid } from '../../../src/http/jwt-svid-auth.js';
import { createJwtAuthority, type JwtAuthority, jwtBundleOf, mintJwtSvid } from '../../fixtures/token.js';

const AUD = 'spiffe://example.org/service/api';
const NOW = new Date('2030-06-01T12:00:00Z');

let local: JwtAuthority;
let partner: JwtAuthority;
let bundles: BundleSet;

beforeAll(() => {
  local = createJwtAuthority({ trustDomain: 'example.org', alg: 'ES256', kid: 'local' });
  partner = createJwtAuthority({ trustDomain: 'partner.org', alg: 'ES256', kid: 'partner' });
  bundles = new BundleSet(jwtBundleOf(local), jwtBundleOf(partner));
});

function bearer(a: JwtAuthority, sub: string) {
  return { headers: { authorization: `Bearer ${mintJwtSvid(a, { sub, aud: AUD, now: NOW })}` } };
}

describe('requireJwtSvid caller naming', () => {
  it('positive control: a local agent token names its agent id', async () => {
    const auth = requireJwtSvid({ source: bundles, audience: AUD, now: () => NOW });
    const r = await auth.check(bearer(local, 'spiffe://example.org/agent/alice'));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.caller.agentId).toBe('alice');
    expect(r.caller.identity).toEqual({ kind: 'agent', agentId: 'alice' });
  });

  it('federated agent impersonation: a partner.org /agent/alice token never carries agentId "alice"', async () => {
    const auth = requireJwtSvid({ source: bundles, audience: AUD, now: () => NOW });
    const r = await auth.check(bearer(partner, 'spiffe://partner.org/agent/alice'));
    // The token itself is valid (federated trust domain): the caller is authenticated ...
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.caller.spiffeId.toString()).toBe('spiffe://partner.org/agent/alice');
    // ... but the naming scheme belongs to our trust domain: no agent id, no description.
    expect(r.caller.agentId).toBeUndefined();
    expect(r.caller.identity).toBeUndefined();
  });

  it('with a non-SPIFFE audience no trust domain is ours, so no caller is named by the scheme', async () => {
    const auth = requireJwtSvid({ source: bundles, audience: 'api', now: () => NOW });
    const token = mintJwtSvid(local, { sub: 'spiffe://example.org/agent/alice', aud: 'api', now: NOW });
    const r = await auth.check({ headers: { authorization: `Bearer ${token}` } });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.caller.agentId).toBeUndefined();
    const named = requireJwtSvid({
      source: bundles,
      audience: 'api',
      namingTrustDomains: ['example.org'],
      now: () => NOW,
    });
    const n = await named.check({ headers: { authorization: `Bearer ${token}` } });
    expect(n.ok && n.caller.agentId).toBe('alice');
    expect(() => requireJwtSvid({ source: bundles, audience: 'api', namingTrustDomains: ['Bad'] })).toThrow(
      expect.objectContaining({ code: 'auth-invalid-option' }),
    );
  });
});
