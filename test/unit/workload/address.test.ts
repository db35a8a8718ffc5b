import { describe, expect, it } from 'vitest';
import { isIdentityError } from '../../../src/errors/index.js';
import { parseWorkloadAddress, resolveWorkloadAddress } from '../../../src/workload/index.js';

// Workload Endpoint standard §4: `unix` with an absolute path and no authority, or `tcp` with an
// IP address and a port; nothing else.
describe('parseWorkloadAddress', () => {
  it.each([
    ['unix:///run/spire/agent.sock', 'unix', 'unix:///run/spire/agent.sock', 'unix:///run/spire/agent.sock'],
    ['unix:/run/spire/agent.sock', 'unix', 'unix:///run/spire/agent.sock', 'unix:///run/spire/agent.sock'],
    ['tcp://127.0.0.1:8000', 'tcp', 'tcp://127.0.0.1:8000', 'ipv4:127.0.0.1:8000'],
    ['tcp://[::1]:8081', 'tcp', 'tcp://[::1]:8081', 'ipv6:[::1]:8081'],
    ['tcp://10.0.0.1:65535', 'tcp', 'tcp://10.0.0.1:65535', 'ipv4:10.0.0.1:65535'],
  ])('accepts %s', (input, kind, uri, target) => {
    const a = parseWorkloadAddress(input);
    expect(a.kind).toBe(kind);
    expect(a.uri).toBe(uri);
    expect(a.target).toBe(target);
  });

  it('returns the path, host and port it parsed', () => {
    const u = parseWorkloadAddress('unix:///tmp/x.sock');
    expect(u.kind === 'unix' && u.path).toBe('/tmp/x.sock');
    const t = parseWorkloadAddress('tcp://192.168.1.2:81');
    expect(t.kind === 'tcp' && [t.host, t.port]).toEqual(['192.168.1.2', 81]);
  });

  it.each([
    ['', /empty/],
    ['unix://foo', /authority/], // go-spiffe accepts this; the standard does not
    ['unix://host/abs', /authority/],
    ['unix://', /socket path/],
    ['unix:', /socket path/],
    ['unix:relative/path', /absolute/],
    ['unix:///a.sock?x=1', /query/],
    ['unix:///a.sock#frag', /fragment/],
    ['unix:///a%2Fb.sock', /percent/],
    ['unix:///dir/', /end with/],
    [`unix:///${'a'.repeat(120)}`, /107 bytes/],
    ['tcp://127.0.0.1:8000/foo', /path/],
    ['tcp://foo:1', /IP address/],
    ['tcp://localhost:8000', /IP address/],
    ['tcp://1.2.3.4', /port/],
    ['tcp://1.2.3.4:', /decimal port/],
    ['tcp://1.2.3.4:0', /1\.\.65535/],
    ['tcp://1.2.3.4:65536', /1\.\.65535/],
    ['tcp://1.2.3.4:+80', /decimal port/],
    ['tcp://user@1.2.3.4:80', /user info/],
    ['tcp://1.2.3.4:80?q', /query/],
    ['tcp://1.2.3.4:80#f', /fragment/],
    ['tcp://[::1]', /port/],
    ['tcp://[fe80::1%eth0]:80', /IP address/],
    ['tcp:1.2.3.4:80', /tcp:\/\/IP:port/],
    ['http://127.0.0.1:80', /scheme "http"/],
    ['UNIX:///a.sock', /scheme "UNIX"/],
    ['/run/spire/agent.sock', /start with/],
    ['unix:///a b.sock', /whitespace/],
    ['unix:///a\u0000b', /control/],
  ])('rejects %j', (input, rule) => {
    let err: unknown;
    try {
      parseWorkloadAddress(input);
    } catch (e) {
      err = e;
    }
    expect(isIdentityError(err, 'workload-address-invalid'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(rule);
  });

  it('rejects absurdly long input without scanning it', () => {
    expect(() => parseWorkloadAddress(`unix:///${'x'.repeat(100_000)}`)).toThrow(/longer than 4096/);
  });
});

describe('resolveWorkloadAddress', () => {
  it('prefers the explicit address over SPIFFE_ENDPOINT_SOCKET', () => {
    const a = resolveWorkloadAddress('unix:///explicit.sock', { SPIFFE_ENDPOINT_SOCKET: 'unix:///env.sock' });
    expect(a.uri).toBe('unix:///explicit.sock');
  });

  it('falls back to SPIFFE_ENDPOINT_SOCKET', () => {
    expect(resolveWorkloadAddress(undefined, { SPIFFE_ENDPOINT_SOCKET: 'tcp://127.0.0.1:9' }).uri).toBe(
      'tcp://127.0.0.1:9',
    );
  });

  it('validates the environment value like an explicit one', () => {
    expect(() => resolveWorkloadAddress(undefined, { SPIFFE_ENDPOINT_SOCKET: 'unix://relative' })).toThrow(
      /workload-address-invalid/,
    );
  });

  it('fails with workload-address-missing when neither is set', () => {
    let err: unknown;
    try {
      resolveWorkloadAddress(undefined, {});
    } catch (e) {
      err = e;
    }
    expect(isIdentityError(err, 'workload-address-missing')).toBe(true);
    expect((err as Error).message).toMatch(/SPIFFE_ENDPOINT_SOCKET/);
  });
});
