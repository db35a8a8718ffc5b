import { describe, expect, it } from 'vitest';
import { IdentityError } from '../../../src/errors/index.js';
import {
  matchAny,
  matchId,
  matchMemberOf,
  matchOneOf,
  matchPathPrefix,
  SpiffeId,
  TrustDomain,
} from '../../../src/spiffeid/index.js';

const id = (s: string): SpiffeId => SpiffeId.parse(s);
const notAnId = {
  trustDomain: { name: 'example.org' },
  path: '/agent',
  toString: () => 'spiffe://example.org/agent',
};

describe('matchers', () => {
  it('matchAny matches every ID but nothing else', () => {
    const m = matchAny();
    expect(m(id('spiffe://a/b'))).toBe(true);
    expect(m(id('spiffe://other'))).toBe(true);
    expect(m(notAnId as unknown as SpiffeId)).toBe(false);
  });

  it('matchId matches exactly one ID', () => {
    const m = matchId('spiffe://example.org/web');
    expect(m(id('spiffe://example.org/web'))).toBe(true);
    expect(m(id('spiffe://example.org/web/x'))).toBe(false);
    expect(m(id('spiffe://example.org/Web'))).toBe(false);
    expect(m(id('spiffe://example.com/web'))).toBe(false);
    expect(matchId(id('spiffe://example.org/web'))(id('spiffe://example.org/web'))).toBe(true);
    expect(m({ toString: () => 'spiffe://example.org/web' } as unknown as SpiffeId)).toBe(false);
  });

  it('matchId rejects an invalid ID when built', () => {
    expect(() => matchId('spiffe://example.org/web/')).toThrow(IdentityError);
  });

  it('matchOneOf matches any listed ID; with none it denies all', () => {
    const m = matchOneOf('spiffe://example.org/a', id('spiffe://example.org/b'));
    expect(m(id('spiffe://example.org/a'))).toBe(true);
    expect(m(id('spiffe://example.org/b'))).toBe(true);
    expect(m(id('spiffe://example.org/c'))).toBe(false);
    expect(matchOneOf()(id('spiffe://example.org/a'))).toBe(false);
    expect(() => matchOneOf('spiffe://example.org/a', 'nope')).toThrow(IdentityError);
  });

  it('matchMemberOf matches the trust domain, not its sub- or parent domains', () => {
    const m = matchMemberOf('example.org');
    expect(m(id('spiffe://example.org'))).toBe(true);
    expect(m(id('spiffe://example.org/x/y'))).toBe(true);
    expect(m(id('spiffe://sub.example.org/x'))).toBe(false);
    expect(m(id('spiffe://example.org.evil/x'))).toBe(false);
    expect(m(notAnId as unknown as SpiffeId)).toBe(false);
    expect(matchMemberOf(TrustDomain.parse('example.org'))(id('spiffe://example.org/x'))).toBe(true);
    expect(() => matchMemberOf('Example.org')).toThrow(IdentityError);
  });

  it('matchPathPrefix respects segment boundaries', () => {
    const m = matchPathPrefix('example.org', '/agent');
    expect(m(id('spiffe://example.org/agent'))).toBe(true);
    expect(m(id('spiffe://example.org/agent/x'))).toBe(true);
    expect(m(id('spiffe://example.org/agent/x/y'))).toBe(true);
    expect(m(id('spiffe://example.org/agents'))).toBe(false);
    expect(m(id('spiffe://example.org/agent-x'))).toBe(false);
    expect(m(id('spiffe://example.org/Agent/x'))).toBe(false);
    expect(m(id('spiffe://example.org'))).toBe(false);
    expect(m(id('spiffe://example.org/x/agent'))).toBe(false);
    expect(m(id('spiffe://other.org/agent/x'))).toBe(false);
    expect(m(notAnId as unknown as SpiffeId)).toBe(false);
  });

  it('matchPathPrefix with a multi-segment prefix', () => {
    const m = matchPathPrefix('example.org', '/pod/prod');
    expect(m(id('spiffe://example.org/pod/prod/web'))).toBe(true);
    expect(m(id('spiffe://example.org/pod/production/web'))).toBe(false);
  });

  it('matchPathPrefix rejects invalid prefixes when built', () => {
    const codeOf = (prefix: string): string => {
      try {
        matchPathPrefix('example.org', prefix);
      } catch (err) {
        return (err as IdentityError).code;
      }
      return 'none';
    };
    expect(codeOf('')).toBe('spiffeid-empty-prefix');
    expect(codeOf('/agent/')).toBe('spiffeid-trailing-slash');
    expect(codeOf('agent')).toBe('spiffeid-path-not-absolute');
    expect(codeOf('/a/../b')).toBe('spiffeid-dot-segment');
    expect(codeOf('/')).toBe('spiffeid-trailing-slash');
  });
});
