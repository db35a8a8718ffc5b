// WorkloadAPIClient one-shot calls against the in-process dev Workload API server. (The same
// behaviours are proved against a real SPIRE agent in test/integration/workload.)
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BundleSet } from '../../../src/bundle/index.js';
import { DevWorkloadServer } from '../../../src/dev/index.js';
import { isIdentityError } from '../../../src/errors/index.js';
import { matchId } from '../../../src/spiffeid/index.js';
import { validateJwtSvid, verifyX509Svid } from '../../../src/svid/index.js';
import { type ReconnectInfo, WorkloadAPIClient } from '../../../src/workload/index.js';
import { nextEvent, rejection } from './helpers.js';

const WEB = 'spiffe://example.org/web';
const DB = 'spiffe://example.org/db';
const API = 'spiffe://example.org/api';

describe('WorkloadAPIClient one-shot calls', () => {
  let server: DevWorkloadServer;
  let client: WorkloadAPIClient;

  beforeAll(async () => {
    server = await DevWorkloadServer.start({
      identities: [WEB, { spiffeId: DB, hint: 'db' }, { spiffeId: API, hint: 'api' }],
      x509Rotation: false,
    });
    client = new WorkloadAPIClient({ address: server.address });
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
  });

  it('fetches the X.509 context: every SVID in order with hints, and the bundle they verify against', async () => {
    const ctx = await client.fetchX509Context();
    expect(ctx.svids.map((s) => [s.spiffeId.toString(), s.hint])).toEqual([
      [WEB, undefined],
      [DB, 'db'],
      [API, 'api'],
    ]);
    expect(ctx.bundles.trustDomains().map(String)).toEqual(['example.org']);
    for (const svid of ctx.svids) {
      expect(svid.leaf.serialNumber.toLowerCase()).toBe(server.serialOf(svid.spiffeId.toString(), svid.hint));
      expect(verifyX509Svid(svid.certificates, ctx.bundles).spiffeId.equals(svid.spiffeId)).toBe(true);
    }
  });

  it('reuses the parsed context for a byte-identical answer, and parses a changed one', async () => {
    const a = await client.fetchX509Context();
    const b = await client.fetchX509Context();
    expect(b).toBe(a);
    server.rotateX509Svids(WEB);
    const c = await client.fetchX509Context();
    expect(c).not.toBe(a);
    expect(c.svids[0]!.leaf.serialNumber.toLowerCase()).toBe(server.serialOf(WEB));
    // Unchanged SVIDs and bundles inside a changed answer are reused too.
    expect(c.svids[1]).toBe(a.svids[1]);
    expect(c.bundles.getX509Bundle('example.org')).toBe(a.bundles.getX509Bundle('example.org'));
  });

  it('selects an X509-SVID: the first by default, else by hint, SPIFFE ID or picker', async () => {
    expect((await client.fetchX509Svid()).spiffeId.toString()).toBe(WEB);
    expect((await client.fetchX509Svid({ hint: 'api' })).spiffeId.toString()).toBe(API);
    expect((await client.fetchX509Svid({ spiffeId: DB })).hint).toBe('db');
    expect((await client.fetchX509Svid((svids) => svids[svids.length - 1])).spiffeId.toString()).toBe(API);
    expect((await client.fetchX509Svids()).length).toBe(3);
  });

  it('reports a selector that matches nothing, listing what is available', async () => {
    const err = await rejection(client.fetchX509Svid({ hint: 'nope' }));
    expect(isIdentityError(err, 'workload-svid-not-found')).toBe(true);
    expect(err.message).toContain('hint "nope"');
    expect(err.message).toContain(`${DB} (hint "db")`);
    const foreign = await rejection(client.fetchX509Svid(() => ({}) as never));
    expect(isIdentityError(foreign, 'workload-invalid-option')).toBe(true);
  });

  it('fetches the X.509 and JWT bundles', async () => {
    const x509 = await client.fetchX509Bundles();
    expect(x509.getX509Bundle('example.org')?.equals(server.x509Bundle())).toBe(true);
    const jwt = await client.fetchJwtBundles();
    expect(jwt.getJwtBundle('example.org')?.equals(server.jwtBundle())).toBe(true);
  });

  it('fetches JWT-SVIDs for an audience, by default the first identity, else by subject or hint', async () => {
    const first = await client.fetchJwtSvid({ audience: 'spiffe://example.org/peer' });
    expect(first.spiffeId.toString()).toBe(WEB);
    expect(first.audience).toEqual(['spiffe://example.org/peer']);
    const validated = await validateJwtSvid(first.token, server.bundleSet(), 'spiffe://example.org/peer');
    expect(validated.spiffeId.toString()).toBe(WEB);

    expect((await client.fetchJwtSvid({ audience: ['a', 'b'], hint: 'db' })).spiffeId.toString()).toBe(DB);
    const bySubject = await client.fetchJwtSvids({ audience: 'a', subject: API });
    expect(bySubject.map((s) => s.spiffeId.toString())).toEqual([API]);
    expect((await client.fetchJwtSvids({ audience: 'a' })).map((s) => s.hint)).toEqual([
      undefined,
      'db',
      'api',
    ]);
  });

  it('refuses an empty or malformed audience before calling the agent', async () => {
    const before = server.callCount('FetchJWTSVID');
    for (const audience of [
      [],
      '',
      [''],
      [1 as unknown as string],
      Array.from({ length: 33 }, (_, i) => `a${i}`),
    ]) {
      const err = await rejection(client.fetchJwtSvid({ audience }));
      expect(isIdentityError(err, 'workload-invalid-audience'), String(err)).toBe(true);
    }
    expect(server.callCount('FetchJWTSVID')).toBe(before);
  });

  it('validates a JWT-SVID on the agent and returns it parsed', async () => {
    const token = await server.mintJwtSvid('spiffe://example.org/peer', ['me']);
    const svid = await client.validateJwtSvid(token, 'me');
    expect(svid.spiffeId.toString()).toBe('spiffe://example.org/peer');
    expect(svid.token).toBe(token);
  });

  it('reports the agent refusing a JWT-SVID with its reason', async () => {
    const token = await server.mintJwtSvid('spiffe://example.org/peer', ['me']);
    const wrongAudience = await rejection(client.validateJwtSvid(token, 'someone-else'));
    expect(isIdentityError(wrongAudience, 'workload-jwt-svid-rejected')).toBe(true);
    expect(wrongAudience.message).toMatch(/audience/);
    const [h, p, s] = token.split('.');
    const tampered = `${h}.${p}.${s!.startsWith('A') ? `B${s!.slice(1)}` : `A${s!.slice(1)}`}`;
    const bad = await rejection(client.validateJwtSvid(tampered, 'me'));
    expect(isIdentityError(bad, 'workload-jwt-svid-rejected')).toBe(true);
    const empty = await rejection(client.validateJwtSvid('', 'me'));
    expect(isIdentityError(empty, 'workload-invalid-option')).toBe(true);
    const huge = await rejection(client.validateJwtSvid('x'.repeat(20_000), 'me'));
    expect(isIdentityError(huge, 'workload-invalid-option')).toBe(true);
  });

  it('verifies a peer chain against the current bundles and applies the authorizer', async () => {
    const peer = await client.fetchX509Svid({ hint: 'db' });
    const ok = await client.validatePeerIdentity(peer.certificates, matchId(DB));
    expect(ok.spiffeId.toString()).toBe(DB);
    const denied = await rejection(client.validatePeerIdentity(peer.certificates, matchId(API)));
    expect(isIdentityError(denied, 'workload-peer-unauthorized')).toBe(true);
    const throwing = await rejection(
      client.validatePeerIdentity(peer.certificates, () => {
        throw new Error('authorizer bug');
      }),
    );
    expect(isIdentityError(throwing, 'workload-peer-unauthorized')).toBe(true);
  });

  it('refuses a peer chain from another CA', async () => {
    const other = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    try {
      const foreign = await new WorkloadAPIClient({ address: other.address }).fetchX509Svid();
      const err = await rejection(client.validatePeerIdentity(foreign.certificates));
      expect(isIdentityError(err)).toBe(true);
      expect((err as { code: string }).code).toMatch(/^x509svid-/);
    } finally {
      await other.close();
    }
  });

  it('maps injected statuses to stable codes with the gRPC status in cause', async () => {
    server.injectFault({ type: 'unavailable', rpc: 'FetchX509SVID' });
    const unavailable = await rejection(client.fetchX509Context());
    expect(isIdentityError(unavailable, 'workload-unavailable')).toBe(true);
    expect((unavailable.cause as { code: number }).code).toBe(14);
    expect(unavailable.message).toContain(server.address);

    server.injectFault({ type: 'permission-denied', rpc: 'FetchJWTSVID' });
    const denied = await rejection(client.fetchJwtSvid({ audience: 'x' }));
    expect(isIdentityError(denied, 'workload-no-identity')).toBe(true);
    expect(denied.message).toContain('no identity issued');

    server.injectFault({ type: 'status', code: 12, rpc: 'FetchJWTBundles' });
    expect(isIdentityError(await rejection(client.fetchJwtBundles()), 'workload-unimplemented')).toBe(true);
    // One-shot calls never retry: the next call works.
    expect((await client.fetchX509Context()).svids.length).toBe(3);
  });

  it('discards a malformed answer with workload-malformed-response', async () => {
    server.injectFault({ type: 'malformed', rpc: 'FetchX509SVID' });
    const bad = await rejection(client.fetchX509Context());
    expect(isIdentityError(bad, 'workload-malformed-response')).toBe(true);
    expect((bad.cause as { code: string }).code).toMatch(/^x509svid-/);
    server.injectFault({ type: 'malformed', rpc: 'FetchJWTSVID' });
    expect(
      isIdentityError(await rejection(client.fetchJwtSvid({ audience: 'a' })), 'workload-malformed-response'),
    ).toBe(true);
    server.injectFault({ type: 'malformed', rpc: 'FetchJWTBundles' });
    expect(isIdentityError(await rejection(client.fetchJwtBundles()), 'workload-malformed-response')).toBe(
      true,
    );
  });

  it('honours an AbortSignal: before the call (no RPC made) and during a slow answer', async () => {
    const before = server.callCount('FetchX509SVID');
    const pre = await rejection(client.fetchX509Context({ signal: AbortSignal.abort(new Error('stop')) }));
    expect(isIdentityError(pre, 'workload-aborted')).toBe(true);
    expect((pre.cause as Error).message).toBe('stop');
    expect(server.callCount('FetchX509SVID')).toBe(before);

    server.injectFault({ type: 'slow', delayMs: 60_000, rpc: 'FetchJWTSVID' });
    const ac = new AbortController();
    const pending = client.fetchJwtSvid({ audience: 'a', signal: ac.signal });
    ac.abort();
    const err = await rejection(pending);
    expect(isIdentityError(err, 'workload-aborted')).toBe(true);
  });

  it('gives up after timeoutMs with workload-timeout', async () => {
    server.injectFault({ type: 'slow', delayMs: 60_000, rpc: 'FetchX509Bundles' });
    const err = await rejection(client.fetchX509Bundles({ timeoutMs: 100 }));
    expect(isIdentityError(err, 'workload-timeout')).toBe(true);
  });

  it('fails fast with workload-unavailable when nothing listens at the address', async () => {
    const c = new WorkloadAPIClient({ address: 'unix:///tmp/tk-nothing-here.sock' });
    try {
      const err = await rejection(c.fetchX509Context());
      expect(isIdentityError(err, 'workload-unavailable')).toBe(true);
    } finally {
      await c.close();
    }
  });

  it('rejects calls in flight with workload-closed on close, and every call after it', async () => {
    const c = new WorkloadAPIClient({ address: server.address });
    server.injectFault({ type: 'slow', delayMs: 60_000, rpc: 'FetchJWTSVID' });
    const pending = c.fetchJwtSvid({ audience: 'a' });
    await c.close();
    expect(isIdentityError(await rejection(pending), 'workload-closed')).toBe(true);
    expect(isIdentityError(await rejection(c.fetchX509Context()), 'workload-closed')).toBe(true);
    expect(() => c.watchX509Context()).toThrow(/workload-closed/);
    await c.close(); // idempotent
    expect(c.closed).toBe(true);
  });

  it('closes through Symbol.asyncDispose', async () => {
    let inner: WorkloadAPIClient | undefined;
    {
      await using c = new WorkloadAPIClient({ address: server.address });
      inner = c;
      await c.fetchX509Context();
    }
    expect(inner.closed).toBe(true);
  });

  it('validates its options', () => {
    expect(() => new WorkloadAPIClient({ address: 'unix://relative' })).toThrow(/workload-address-invalid/);
    expect(() => new WorkloadAPIClient({ address: server.address, timeoutMs: 0 })).toThrow(
      /workload-invalid-option/,
    );
    expect(() => new WorkloadAPIClient({ address: server.address, maxReceiveMessageBytes: 10 })).toThrow(
      /workload-invalid-option/,
    );
    expect(() => new WorkloadAPIClient({ address: server.address, limits: { maxSvids: 0 } })).toThrow(
      /workload-invalid-option/,
    );
  });

  it('enforces its count limits on what the agent sends', async () => {
    const c = new WorkloadAPIClient({ address: server.address, limits: { maxSvids: 2 } });
    try {
      const err = await rejection(c.fetchX509Context());
      expect(isIdentityError(err, 'workload-malformed-response')).toBe(true);
      expect(err.message).toMatch(/more than 2 svids entries.*before decoding/);
    } finally {
      await c.close();
    }
  });
});

describe('WorkloadAPIClient receive limit', () => {
  it('accepts answers past grpc-js 4 MiB default (big federated bundles) and bounds them by maxReceiveMessageBytes', async () => {
    // 300 distinct CA certificates of ~3.6 kB (a long subject) shared by 4 federated trust
    // domains: ≈ 4.4 MB in one FetchX509Bundles message.
    const { generateKeyPair, mintCertificate } = await import('../../../src/dev/pki.js');
    const { X509Bundle } = await import('../../../src/bundle/index.js');
    const now = Date.now();
    const certs = Array.from({ length: 300 }, (_, i) => {
      const keys = generateKeyPair();
      return mintCertificate({
        publicKey: keys.publicKey,
        issuer: undefined,
        selfPrivateKey: keys.privateKey,
        commonName: `${i}-${'x'.repeat(3000)}`,
        isCa: true,
        uris: ['spiffe://fed.test'],
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + 3_600_000),
      }).der;
    });
    const big = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    for (let i = 0; i < 4; i++) {
      big.setFederatedBundle(`fed${i}.test`, { x509: X509Bundle.fromAuthorities(`fed${i}.test`, certs) });
    }
    const roomy = new WorkloadAPIClient({ address: big.address });
    const tight = new WorkloadAPIClient({ address: big.address, maxReceiveMessageBytes: 1024 * 1024 });
    try {
      const ctx = await roomy.fetchX509Bundles();
      expect(ctx.trustDomains().length).toBe(5);
      const err = await rejection(tight.fetchX509Bundles());
      expect(isIdentityError(err, 'workload-rpc-failed')).toBe(true);
      expect((err.cause as { code: number }).code).toBe(8); // RESOURCE_EXHAUSTED
      // Watches (grpc-js streams) have the same limit.
      const watch = roomy.watchX509Bundles();
      const [state] = await nextEvent<[BundleSet]>(watch, 'update', 8000);
      expect(state.trustDomains().length).toBe(5);
      const tightWatch = tight.watchX509Bundles();
      const [info] = await nextEvent<[ReconnectInfo]>(tightWatch, 'reconnecting', 8000);
      expect(info.grpcCode).toBe(8);
      await tightWatch.close();
      await watch.close();
    } finally {
      await roomy.close();
      await tight.close();
      await big.close();
    }
  });

  it('parses DER exactly as node does (a sanity check of the dev CA)', async () => {
    const s = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    try {
      const root = new X509Certificate(s.x509Bundle().authorities[0]!.raw);
      expect(root.ca).toBe(true);
      expect(root.checkIssued(root)).toBe(true);
    } finally {
      await s.close();
    }
  });
});
