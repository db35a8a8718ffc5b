import { describe, expect, it } from 'vitest';
import { SpiffeId } from '../../../src/spiffeid/index.js';
import { MAX_MTLS_CONFIG_ENTRIES, parseMtlsConfig } from '../../../src/tls/index.js';

const bad = (input: unknown, pattern: RegExp) =>
  expect(() => parseMtlsConfig(input)).toThrow(
    expect.objectContaining({ code: 'tls-config-invalid', message: expect.stringMatching(pattern) }),
  );

describe('parseMtlsConfig', () => {
  it('builds an authorizer allowing the listed IDs or members of the listed trust domains', () => {
    const cfg = parseMtlsConfig(
      JSON.parse(
        '{"enabled":true,"allowedSpiffeIds":["spiffe://example.org/billing"],"trustDomains":["partner.org"],"minTlsVersion":"1.2"}',
      ),
    );
    if (!cfg.enabled) throw new Error('expected enabled');
    expect(cfg.minTlsVersion).toBe('TLSv1.2');
    const ok = (s: string) => cfg.authorizer.authorize(SpiffeId.parse(s), []).allowed;
    expect(ok('spiffe://example.org/billing')).toBe(true);
    expect(ok('spiffe://partner.org/anything')).toBe(true);
    expect(ok('spiffe://example.org/other')).toBe(false);
    const denied = cfg.authorizer.authorize(SpiffeId.parse('spiffe://example.org/other'), []);
    expect(!denied.allowed && denied.reason).toContain(
      'spiffe://example.org/other not in [spiffe://example.org/billing]',
    );
  });

  it('defaults to TLS 1.3 and accepts the TLSv1.x spelling', () => {
    const a = parseMtlsConfig({ enabled: true, allowedSpiffeIds: ['spiffe://td/a'] });
    const b = parseMtlsConfig({ enabled: true, trustDomains: ['td'], minTlsVersion: 'TLSv1.3' });
    expect(a.enabled && a.minTlsVersion).toBe('TLSv1.3');
    expect(b.enabled && b.minTlsVersion).toBe('TLSv1.3');
  });

  it('a disabled configuration is still validated', () => {
    expect(parseMtlsConfig({ enabled: false })).toEqual({ enabled: false });
    bad({ enabled: false, allowedSpiffeIds: ['nope'] }, /allowedSpiffeIds\[0\]/);
  });

  it('rejects every malformed shape with tls-config-invalid', () => {
    bad(null, /must be a JSON object/);
    bad([], /must be a JSON object/);
    bad('{"enabled":true}', /must be a JSON object/);
    bad({}, /enabled is required/);
    bad({ enabled: 'true', allowedSpiffeIds: ['spiffe://td/a'] }, /enabled is required/);
    bad({ enabled: true, allowedSpiffeIds: ['spiffe://td/a'], extra: 1 }, /unknown key "extra"/);
    bad({ enabled: true, allowedSpiffeIds: 'spiffe://td/a' }, /allowedSpiffeIds must be an array/);
    bad({ enabled: true, allowedSpiffeIds: [1] }, /allowedSpiffeIds\[0\] must be a string/);
    bad({ enabled: true, allowedSpiffeIds: ['spiffe://td/a/../b'] }, /allowedSpiffeIds\[0\]: spiffeid-/);
    bad({ enabled: true, allowedSpiffeIds: ['spiffe://td/a', 'spiffe://td/a'] }, /listed twice/);
    bad({ enabled: true, trustDomains: ['Example.org'] }, /trustDomains\[0\]: spiffeid-/);
    bad({ enabled: true, trustDomains: ['td', 'spiffe://td'] }, /listed twice/);
    bad({ enabled: true, trustDomains: [] }, /no peer could ever connect/);
    bad({ enabled: true }, /no peer could ever connect/);
    for (const v of ['1.1', '1.0', 'TLSv1.1', 'TLSv1', 1.3, '']) {
      bad({ enabled: true, trustDomains: ['td'], minTlsVersion: v }, /minTlsVersion must be/);
    }
    bad(
      { enabled: true, allowedSpiffeIds: new Array(MAX_MTLS_CONFIG_ENTRIES + 1).fill('spiffe://td/a') },
      /more than/,
    );
  });

  it('ignores inherited properties and never reads a prototype', () => {
    const proto = { enabled: true, trustDomains: ['td'] };
    bad(Object.create(proto), /plain JSON object/);
    bad(JSON.parse('{"enabled":true,"__proto__":{"trustDomains":["td"]}}'), /unknown key "__proto__"/);
  });
});
