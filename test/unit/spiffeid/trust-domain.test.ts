import { describe, expect, it } from 'vitest';
import { IdentityError } from '../../../src/errors/index.js';
import { SpiffeId, TrustDomain } from '../../../src/spiffeid/index.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IdentityError);
    return (err as IdentityError).code;
  }
  throw new Error('expected an IdentityError, nothing was thrown');
}

describe('TrustDomain.parse', () => {
  const valid: Array<[string, string]> = [
    ['example.org', 'example.org'],
    ['a', 'a'],
    ['1.2.3.4', '1.2.3.4'],
    ['under_score-dash.0', 'under_score-dash.0'],
    ['spiffe://example.org', 'example.org'],
    ['spiffe://example.org/some/workload', 'example.org'],
    ['a'.repeat(255), 'a'.repeat(255)],
  ];
  it.each(valid)('%j → %j', (input, name) => {
    const td = TrustDomain.parse(input);
    expect(td.name).toBe(name);
    expect(td.toString()).toBe(name);
    expect(td.idString()).toBe(`spiffe://${name}`);
    expect(JSON.stringify(td)).toBe(JSON.stringify(name));
  });

  const invalid: Array<[string, string, string]> = [
    ['empty', '', 'spiffeid-missing-trust-domain'],
    ['uppercase', 'Example.org', 'spiffeid-bad-trust-domain-char'],
    ['port', 'example.org:443', 'spiffeid-port-not-allowed'],
    ['user info', 'me@example.org', 'spiffeid-userinfo-not-allowed'],
    ['path without scheme', 'example.org/x', 'spiffeid-bad-trust-domain-char'],
    ['space', 'example .org', 'spiffeid-bad-trust-domain-char'],
    ['percent', 'ex%41mple', 'spiffeid-percent-encoding'],
    ['IPv6', '[::1]', 'spiffeid-bad-trust-domain-char'],
    ['too long', 'a'.repeat(256), 'spiffeid-trust-domain-too-long'],
    ['uppercase SPIFFE ID', 'SPIFFE://example.org', 'spiffeid-wrong-scheme'],
    ['other scheme', 'https://example.org', 'spiffeid-wrong-scheme'],
    ['SPIFFE ID without trust domain', 'spiffe:///x', 'spiffeid-missing-trust-domain'],
    ['SPIFFE ID with bad path', 'spiffe://example.org/../x', 'spiffeid-dot-segment'],
  ];
  it.each(invalid)('rejects %s (%j) with %s', (_name, input, code) => {
    expect(codeOf(() => TrustDomain.parse(input))).toBe(code);
  });

  it('rejects non-strings with an IdentityError', () => {
    expect(codeOf(() => TrustDomain.parse(undefined as unknown as string))).toBe('spiffeid-not-string');
    expect(codeOf(() => TrustDomain.parse(7 as unknown as string))).toBe('spiffeid-not-string');
  });
});

describe('TrustDomain methods', () => {
  it('equals compares names and rejects non-trust-domains', () => {
    const td = TrustDomain.parse('example.org');
    expect(td.equals(TrustDomain.parse('spiffe://example.org/x'))).toBe(true);
    expect(td.equals(TrustDomain.parse('example.com'))).toBe(false);
    expect(td.equals({ name: 'example.org' } as unknown as TrustDomain)).toBe(false);
  });

  it('id() is the root SPIFFE ID and is reused', () => {
    const td = TrustDomain.parse('example.org');
    const root = td.id();
    expect(root).toBeInstanceOf(SpiffeId);
    expect(root.toString()).toBe('spiffe://example.org');
    expect(root.isRoot()).toBe(true);
    expect(root.path).toBe('');
    expect(root.trustDomain.equals(td)).toBe(true);
    expect(td.id()).toBe(root);
  });
});
