/**
 * The X.509/TLS attack catalogue (shared/knowledge/spiffe-rules.md §4), each case a named test
 * on both sides: our server facing a raw attacking client, and our client facing a raw attacking
 * server. Every case has a positive control, and refusals are detected at protocol level: the
 * attacker's first read fails and none of its bytes reach the application.
 */
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BundleSet } from '../../../src/bundle/index.js';
import { IdentityError } from '../../../src/errors/index.js';
import {
  authorizeAny,
  authorizeId,
  createMtlsTlsServer,
  getPeerSpiffeId,
  MtlsClient,
  staticX509Source,
} from '../../../src/tls/index.js';
import {
  type CaMaterial,
  createCa,
  createIntermediate,
  issueSvid,
  type SvidMaterial,
} from '../../fixtures/pki.js';
import {
  bundlesOf,
  closeServer,
  type ExchangeResult,
  exchange,
  listen,
  pemOf,
  portOf,
  rawClientOptions,
  rawServer,
  toSvid,
} from './helpers.js';

let rootA: CaMaterial; // example.org
let rootB: CaMaterial; // other.org, also trusted (federated)
let bundles: BundleSet;
let serverSvid: SvidMaterial;
let clientSvid: SvidMaterial;

/** Attack certificates, by test name, and the SVID rule each must trip. */
const attacks: Record<string, { make: () => Promise<SvidMaterial>; reason: string }> = {
  'CA cert as leaf': {
    make: () =>
      issueSvid(rootA, 'spiffe://example.org/evil', {
        basicConstraints: { ca: true },
        keyUsage: ['digitalSignature', 'keyCertSign'],
      }),
    reason: 'x509svid-leaf-is-ca',
  },
  'leaf with keyCertSign': {
    make: () =>
      issueSvid(rootA, 'spiffe://example.org/evil', { keyUsage: ['digitalSignature', 'keyCertSign'] }),
    reason: 'x509svid-leaf-key-cert-sign',
  },
  'two URI SANs': {
    make: () =>
      issueSvid(rootA, 'spiffe://example.org/web', {
        uris: ['spiffe://example.org/web', 'spiffe://example.org/admin'],
      }),
    reason: 'x509svid-leaf-multiple-uri-sans',
  },
  'no SPIFFE ID (DNS-only certificate)': {
    make: () => issueSvid(rootA, 'unused', { uris: [], dnsNames: ['localhost'] }),
    reason: 'x509svid-leaf-missing-uri-san',
  },
  'wrong trust domain, signed by our CA': {
    make: () => issueSvid(rootA, 'spiffe://other.org/x'),
    reason: 'x509svid-untrusted-chain',
  },
  'trust domain without a bundle': {
    make: () => issueSvid(rootA, 'spiffe://unknown.org/x'),
    reason: 'x509svid-no-bundle',
  },
  'cross-domain CA with a pooled set (other.org CA vouching for an example.org ID)': {
    make: () => issueSvid(rootB, 'spiffe://example.org/imposter'),
    reason: 'x509svid-untrusted-chain',
  },
  expired: {
    make: () => issueSvid(rootA, 'spiffe://example.org/old', { expired: true }),
    reason: 'x509svid-expired',
  },
  'not yet valid': {
    make: () => issueSvid(rootA, 'spiffe://example.org/future', { notYetValid: true }),
    reason: 'x509svid-not-yet-valid',
  },
  'unknown root': {
    make: async () => issueSvid(await createCa({ trustDomain: 'example.org' }), 'spiffe://example.org/rogue'),
    reason: 'x509svid-untrusted-chain',
  },
  'intermediate without CA flag': {
    make: async () =>
      issueSvid(
        await createIntermediate(rootA, { basicConstraints: { ca: false }, keyUsage: ['keyCertSign'] }),
        'spiffe://example.org/via-bad-intermediate',
      ),
    reason: 'x509svid-intermediate-not-ca',
  },
};

const made: Record<string, SvidMaterial> = {};

beforeAll(async () => {
  rootA = await createCa({ trustDomain: 'example.org' });
  rootB = await createCa({ trustDomain: 'other.org' });
  bundles = bundlesOf(rootA, rootB);
  serverSvid = await issueSvid(rootA, 'spiffe://example.org/server');
  clientSvid = await issueSvid(rootA, 'spiffe://example.org/client');
  for (const [name, a] of Object.entries(attacks)) made[name] = await a.make();
});

function expectRefusedAtProtocolLevel(r: ExchangeResult): void {
  expect(r.data).toBe('');
  expect(r.error?.code).not.toBe('TEST_TIMEOUT');
}

describe('server side: our server against attacking clients', () => {
  let server: tls.Server;
  let port: number;
  const received: string[] = [];
  const accepted: tls.TLSSocket[] = [];
  const rejections: Array<{ error: IdentityError; opensslAuthorized: boolean }> = [];

  beforeAll(async () => {
    const source = staticX509Source(toSvid(serverSvid), bundles);
    server = createMtlsTlsServer(
      source,
      authorizeAny(),
      (socket) => {
        accepted.push(socket);
        socket.on('error', () => {});
        socket.on('data', (d: Buffer) => {
          received.push(d.toString());
          socket.write(`pong ${getPeerSpiffeId(socket)}`);
        });
      },
      { onPeerRejected: (error, s) => rejections.push({ error, opensslAuthorized: s.authorized }) },
    );
    server.on('tlsClientError', () => {});
    await listen(server);
    port = portOf(server);
  });
  afterAll(() => closeServer(server, new Set(accepted)));

  const attempt = async (svid: SvidMaterial | undefined, extra: tls.ConnectionOptions = {}) => {
    const before = { received: received.length, accepted: accepted.length, rejections: rejections.length };
    const r = await exchange(tls.connect(rawClientOptions(port, svid && pemOf(svid), extra)));
    return { r, newRejections: rejections.slice(before.rejections), before };
  };

  it('positive control: a valid SPIFFE client is served and its ID recorded', async () => {
    const { r } = await attempt(clientSvid);
    expect(r.data).toBe('pong spiffe://example.org/client');
  });

  for (const [name, a] of Object.entries(attacks)) {
    it(`refuses a client presenting: ${name}`, async () => {
      const { r, newRejections, before } = await attempt(made[name]);
      expectRefusedAtProtocolLevel(r);
      expect(received.length).toBe(before.received);
      expect(accepted.length).toBe(before.accepted);
      expect(newRejections).toHaveLength(1);
      const e = newRejections[0]!.error;
      expect(e).toBeInstanceOf(IdentityError);
      expect(e.code).toBe('tls-peer-untrusted');
      expect(e.details?.['reason']).toBe(a.reason);
      expect(e.message).toContain(a.reason);
    });
  }

  it('the pooled-roots impostor passes OpenSSL and is refused only by the per-trust-domain check', async () => {
    const { newRejections } = await attempt(
      made['cross-domain CA with a pooled set (other.org CA vouching for an example.org ID)'],
    );
    expect(newRejections[0]?.opensslAuthorized).toBe(true);
    expect(newRejections[0]?.error.details?.['reason']).toBe('x509svid-untrusted-chain');
  });

  it('refuses a client without a certificate', async () => {
    const { r, newRejections, before } = await attempt(undefined);
    expectRefusedAtProtocolLevel(r);
    expect(r.secureConnected).toBe(true); // TLS 1.3: the client thinks it is connected
    expect(received.length).toBe(before.received);
    expect(newRejections.map((x) => x.error.code)).toEqual(['tls-peer-no-certificate']);
  });

  it('refuses TLS 1.0/1.1 offered', async () => {
    for (const v of ['TLSv1', 'TLSv1.1'] as const) {
      const { r, before } = await attempt(clientSvid, {
        minVersion: v,
        maxVersion: v,
        ciphers: 'DEFAULT@SECLEVEL=0',
      });
      expectRefusedAtProtocolLevel(r);
      expect(r.secureConnected).toBe(false);
      expect(r.error?.message).toMatch(/protocol version|unsupported protocol|wrong version/i);
      expect(accepted.length).toBe(before.accepted);
    }
  });

  it('refuses TLS 1.2 by default', async () => {
    const { r } = await attempt(clientSvid, { maxVersion: 'TLSv1.2' });
    expectRefusedAtProtocolLevel(r);
    expect(r.secureConnected).toBe(false);
  });

  it('refuses a valid client the authorizer excludes, naming the rule', async () => {
    const other = createMtlsTlsServer(
      staticX509Source(toSvid(serverSvid), bundles),
      authorizeId('spiffe://example.org/someone-else'),
      (s) => s.on('data', () => s.write('pong')),
      { onPeerRejected: (error) => rejections.push({ error, opensslAuthorized: true }) },
    );
    await listen(other);
    const before = rejections.length;
    const r = await exchange(tls.connect(rawClientOptions(portOf(other), pemOf(clientSvid))));
    await closeServer(other);
    expectRefusedAtProtocolLevel(r);
    expect(rejections[before]?.error.message).toBe(
      'tls-peer-unauthorized: spiffe://example.org/client is not spiffe://example.org/someone-else',
    );
  });
});

describe('client side: our client against attacking servers', () => {
  const client = () => new MtlsClient(staticX509Source(toSvid(clientSvid), bundles), authorizeAny());

  const attempt = async (svid: SvidMaterial, extra: tls.TlsOptions = {}, c = client()) => {
    const srv = await rawServer(pemOf(svid), extra);
    try {
      const socket = c.connect({ host: '127.0.0.1', port: srv.port });
      const r = await exchange(socket);
      return { r, received: [...srv.received], socket };
    } finally {
      c.close();
      await srv.close();
    }
  };

  it('positive control: a valid SPIFFE server is reached and its ID recorded', async () => {
    const { r, received, socket } = await attempt(serverSvid);
    expect(r.data).toBe('pong');
    expect(received).toEqual(['ping']);
    expect(getPeerSpiffeId(socket)?.toString()).toBe('spiffe://example.org/server');
  });

  for (const [name, a] of Object.entries(attacks)) {
    it(`refuses a server presenting: ${name}`, async () => {
      const { r, received, socket } = await attempt(made[name]!);
      expectRefusedAtProtocolLevel(r);
      expect(received).toEqual([]); // the request never left the client
      expect(r.error).toBeInstanceOf(IdentityError);
      expect((r.error as IdentityError).code).toBe('tls-peer-untrusted');
      expect((r.error as IdentityError).details?.['reason']).toBe(a.reason);
      expect(getPeerSpiffeId(socket)).toBeUndefined();
    });
  }

  it('refuses a server that only speaks TLS 1.0/1.1', async () => {
    for (const v of ['TLSv1', 'TLSv1.1'] as const) {
      const { r, received } = await attempt(serverSvid, {
        minVersion: v,
        maxVersion: v,
        ciphers: 'DEFAULT@SECLEVEL=0',
      });
      expectRefusedAtProtocolLevel(r);
      expect(r.secureConnected).toBe(false);
      expect(received).toEqual([]);
    }
  });

  it('refuses a TLS 1.2-only server by default and accepts it with minTlsVersion TLSv1.2', async () => {
    const refused = await attempt(serverSvid, { maxVersion: 'TLSv1.2' });
    expectRefusedAtProtocolLevel(refused.r);
    const relaxed = new MtlsClient(staticX509Source(toSvid(clientSvid), bundles), authorizeAny(), {
      minTlsVersion: 'TLSv1.2',
    });
    const ok = await attempt(serverSvid, { maxVersion: 'TLSv1.2' }, relaxed);
    expect(ok.r.data).toBe('pong');
  });

  it('refuses a valid server the authorizer excludes, naming the rule', async () => {
    const c = new MtlsClient(
      staticX509Source(toSvid(clientSvid), bundles),
      authorizeId('spiffe://example.org/db'),
    );
    const { r, received } = await attempt(serverSvid, {}, c);
    expectRefusedAtProtocolLevel(r);
    expect(received).toEqual([]);
    expect(r.error?.message).toBe(
      'tls-peer-unauthorized: spiffe://example.org/server is not spiffe://example.org/db',
    );
  });

  it('never resumes a session, even when the server offers tickets', async () => {
    const srv = await rawServer(pemOf(serverSvid));
    const c = client();
    try {
      // Control: the server does resume for a plain client that hands back its session.
      let session: Buffer | undefined;
      let plainReused: boolean[] = [];
      for (let i = 0; i < 2; i++) {
        const plain = tls.connect({
          ...rawClientOptions(srv.port, pemOf(clientSvid)),
          ...(session ? { session } : {}),
        });
        plain.on('session', (sess: Buffer) => {
          session = sess;
        });
        plain.on('secureConnect', () => {
          plainReused = [...plainReused, plain.isSessionReused()];
        });
        await exchange(plain);
      }
      expect(plainReused).toEqual([false, true]);
      for (let i = 0; i < 3; i++) {
        const socket = c.connect({ host: '127.0.0.1', port: srv.port });
        let reused: boolean | undefined;
        socket.on('secureConnect', () => {
          reused = socket.isSessionReused();
        });
        const r = await exchange(socket);
        expect(r.data).toBe('pong');
        expect(reused).toBe(false);
      }
    } finally {
      c.close();
      await srv.close();
    }
  });
});
