// The dev Workload API server itself: what it mints, what it enforces, its faults and lifecycle.
// (Clients nobody here wrote, spire-agent's CLI and go-spiffe, are run against it in
// test/integration/workload/dev-interop.test.ts.)
import { X509Certificate } from 'node:crypto';
import { existsSync, linkSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { DevWorkloadServer } from '../../../src/dev/index.js';
import { isIdentityError } from '../../../src/errors/index.js';
import { loadWorkloadService } from '../../../src/internal/grpc-workload.js';
import { validateJwtSvid, verifyX509Svid } from '../../../src/svid/index.js';
import { WorkloadAPIClient } from '../../../src/workload/index.js';
import { rejection } from '../workload/helpers.js';

const WEB = 'spiffe://example.org/web';

/** FetchX509SVID with hand-made metadata through a raw grpc-js client (no SDK code). */
function rawFetch(address: string, md: grpc.Metadata): Promise<grpc.ServiceError | 'ok'> {
  const { Client } = loadWorkloadService();
  const c = new Client(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    FetchX509SVID(req: object, md: grpc.Metadata): grpc.ClientReadableStream<unknown>;
  };
  return new Promise<grpc.ServiceError | 'ok'>((resolve) => {
    const s = c.FetchX509SVID({}, md);
    s.on('data', () => {
      resolve('ok');
      s.cancel();
    });
    s.on('error', (e: grpc.ServiceError) => resolve(e));
  }).finally(() => c.close());
}

describe('DevWorkloadServer', () => {
  it('mints X509-SVIDs that pass the SDK verifier and node/OpenSSL checks', async () => {
    await using server = await DevWorkloadServer.start({
      identities: [{ spiffeId: WEB, dnsNames: ['web.local'] }],
    });
    await using client = new WorkloadAPIClient({ address: server.address });
    const svid = await client.fetchX509Svid();
    const { spiffeId, chain } = verifyX509Svid(svid.certificates, server.x509Bundle());
    expect(spiffeId.toString()).toBe(WEB);
    expect(chain.length).toBe(2);
    const leaf = svid.leaf;
    const root = new X509Certificate(server.x509Bundle().authorities[0]!.raw);
    expect(leaf.ca).toBe(false);
    expect(leaf.subjectAltName).toContain(`URI:${WEB}`);
    expect(leaf.subjectAltName).toContain('DNS:web.local');
    expect(leaf.checkIssued(root)).toBe(true);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(root.ca).toBe(true);
    expect(root.subjectAltName).toBe('URI:spiffe://example.org');
    // Lifetime: the default TTL is 1 h, backdated 10 s.
    const life = new Date(leaf.validTo).getTime() - new Date(leaf.validFrom).getTime();
    expect(life).toBeGreaterThanOrEqual(3_600_000);
    expect(life).toBeLessThanOrEqual(3_612_000);
  });

  it('honours per-identity TTLs and never outlives its CA', async () => {
    await using server = await DevWorkloadServer.start({
      identities: [{ spiffeId: WEB, x509SvidTtlMs: 120_000 }, 'spiffe://example.org/long'],
      x509SvidTtlMs: 48 * 3_600_000,
      caTtlMs: 3_600_000,
    });
    await using client = new WorkloadAPIClient({ address: server.address });
    const [short, long] = await client.fetchX509Svids();
    const ca = new X509Certificate(server.x509Bundle().authorities[0]!.raw);
    expect(short!.expiresAt.getTime() - Date.now()).toBeLessThanOrEqual(121_000);
    expect(long!.expiresAt.getTime()).toBeLessThanOrEqual(new Date(ca.validTo).getTime());
  });

  it('enforces the workload.spiffe.io: true header with InvalidArgument', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB] });
    const missing = await rawFetch(server.address, new grpc.Metadata());
    expect(missing !== 'ok' && missing.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(missing !== 'ok' && missing.details).toBe('security header missing from request');
    const upper = new grpc.Metadata();
    upper.set('workload.spiffe.io', 'TRUE');
    expect(((await rawFetch(server.address, upper)) as grpc.ServiceError).code).toBe(
      grpc.status.INVALID_ARGUMENT,
    );
    const twice = new grpc.Metadata();
    twice.add('workload.spiffe.io', 'true');
    twice.add('workload.spiffe.io', 'true');
    expect(((await rawFetch(server.address, twice)) as grpc.ServiceError).code).toBe(
      grpc.status.INVALID_ARGUMENT,
    );
    const good = new grpc.Metadata();
    good.set('workload.spiffe.io', 'true');
    expect(await rawFetch(server.address, good)).toBe('ok');
  });

  it('serves uid-bound identities only on that uid’s socket, owned by it with mode 0600', async () => {
    await using server = await DevWorkloadServer.start({
      identities: [WEB, { spiffeId: 'spiffe://example.org/other-user', uid: 23456 }],
    });
    const address = server.addressFor(23456);
    const path = address.slice('unix://'.length);
    const st = statSync(path);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(23456);
    expect(statSync(server.socketPath).mode & 0o777).toBe(0o777);
    // As root this test may connect to both; each socket serves only its own identities.
    await using main = new WorkloadAPIClient({ address: server.address });
    await using perUid = new WorkloadAPIClient({ address });
    expect((await main.fetchX509Svids()).map((s) => s.spiffeId.toString())).toEqual([WEB]);
    expect((await perUid.fetchX509Svids()).map((s) => s.spiffeId.toString())).toEqual([
      'spiffe://example.org/other-user',
    ]);
    expect(() => server.addressFor(1)).toThrow(/dev-unknown-identity/);
    await server.addIdentity({ spiffeId: 'spiffe://example.org/third', uid: 34567 });
    expect(statSync(server.addressFor(34567).slice(7)).uid).toBe(34567);
  });

  it('answers PermissionDenied ("no identity issued") when a socket has no identity, like SPIRE', async () => {
    await using server = await DevWorkloadServer.start({ identities: [] });
    await using client = new WorkloadAPIClient({ address: server.address });
    const err = await rejection(client.fetchX509Context());
    expect(isIdentityError(err, 'workload-no-identity')).toBe(true);
    expect(
      isIdentityError(await rejection(client.fetchJwtSvid({ audience: 'a' })), 'workload-no-identity'),
    ).toBe(true);
  });

  it('keeps the previous CA and JWT key in the bundle until dropped', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    await using client = new WorkloadAPIClient({ address: server.address });
    const before = await client.fetchX509Svid();
    const oldToken = await server.mintJwtSvid(WEB, 'a');
    server.rotateX509Authority();
    server.rotateJwtAuthority();
    expect(server.x509Bundle().authorities.length).toBe(2);
    expect(server.jwtBundle().keyIds().length).toBe(2);
    // Old material still verifies while the old authorities are published.
    expect(verifyX509Svid(before.certificates, server.x509Bundle()).spiffeId.toString()).toBe(WEB);
    await validateJwtSvid(oldToken, server.jwtBundle(), 'a');
    server.dropPreviousX509Authorities();
    server.dropPreviousJwtAuthorities();
    expect(() => verifyX509Svid(before.certificates, server.x509Bundle())).toThrow(/x509svid-/);
    await expect(validateJwtSvid(oldToken, server.jwtBundle(), 'a')).rejects.toThrow(/jwtsvid-unknown-kid/);
    const after = await client.fetchX509Svid();
    expect(verifyX509Svid(after.certificates, server.x509Bundle()).spiffeId.toString()).toBe(WEB);
  });

  it('validates JWT-SVIDs of federated trust domains with their bundle', async () => {
    await using partner = await DevWorkloadServer.start({ trustDomain: 'partner.test' });
    await using server = await DevWorkloadServer.start({
      identities: [WEB],
      federatedBundles: { 'partner.test': { jwt: partner.jwtBundle(), x509: partner.x509Bundle() } },
    });
    await using client = new WorkloadAPIClient({ address: server.address });
    const token = await partner.mintJwtSvid('spiffe://partner.test/svc', 'me');
    expect((await client.validateJwtSvid(token, 'me')).spiffeId.toString()).toBe('spiffe://partner.test/svc');
    const ctx = await client.fetchX509Context();
    expect(ctx.bundles.getX509Bundle('partner.test')?.equals(partner.x509Bundle())).toBe(true);
  });

  it('counts calls and applies faults only to the calls they name', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB] });
    await using client = new WorkloadAPIClient({ address: server.address });
    server.injectFault({ type: 'unavailable', calls: 2, rpc: 'FetchJWTBundles' });
    await client.fetchX509Context(); // not affected
    expect(isIdentityError(await rejection(client.fetchJwtBundles()), 'workload-unavailable')).toBe(true);
    expect(isIdentityError(await rejection(client.fetchJwtBundles()), 'workload-unavailable')).toBe(true);
    await client.fetchJwtBundles();
    expect(server.callCount('FetchJWTBundles')).toBe(3);
    server.injectFault({ type: 'permission-denied', calls: Number.POSITIVE_INFINITY });
    expect(isIdentityError(await rejection(client.fetchX509Context()), 'workload-no-identity')).toBe(true);
    expect(isIdentityError(await rejection(client.fetchX509Context()), 'workload-no-identity')).toBe(true);
    server.clearFaults();
    await client.fetchX509Context();
    expect(() => server.injectFault({ type: 'status', code: 0 })).toThrow(/dev-invalid-option/);
    expect(() => server.injectFault({ type: 'slow', delayMs: -1 })).toThrow(/dev-invalid-option/);
  });

  it('validates its options', async () => {
    const bad: [object, RegExp][] = [
      [{ trustDomain: 'Bad TD' }, /trustDomain/],
      [{ identities: ['spiffe://other.org/x'] }, /not in the server's trust domain/],
      [{ identities: ['spiffe://example.org'] }, /has no path/],
      [{ identities: ['not an id'] }, /not a SPIFFE ID/],
      [{ identities: [WEB, WEB] }, /already configured/],
      [{ x509SvidTtlMs: 10 }, /x509SvidTtlMs/],
      [{ x509Rotation: 5 }, /x509Rotation/],
      [{ socketPath: 'relative.sock' }, /absolute/],
    ];
    for (const [opts, rule] of bad) {
      const err = await rejection(DevWorkloadServer.start(opts));
      expect(isIdentityError(err, 'dev-invalid-option'), String(err)).toBe(true);
      expect(err.message).toMatch(rule);
    }
  });

  it('replaces a stale socket, refuses a live one or a non-socket file, and cleans up on close', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tk-devsock-'));
    try {
      const path = join(dir, 'api.sock');
      // A live socket at the path: a hard link to a listening socket.
      const other = createServer();
      const otherPath = join(dir, 'other.sock');
      await new Promise<void>((r) => other.listen(otherPath, r));
      linkSync(otherPath, path);
      const live = await rejection(DevWorkloadServer.start({ socketPath: path }));
      expect(isIdentityError(live, 'dev-socket-in-use')).toBe(true);
      // Its listener goes away (node removes other.sock); the link stays behind, stale.
      await new Promise<void>((r) => other.close(() => r()));
      expect(existsSync(path)).toBe(true);
      const server = await DevWorkloadServer.start({ socketPath: path, identities: [WEB] });
      expect(existsSync(path)).toBe(true);
      await server.close();
      await server.close();
      expect(existsSync(path)).toBe(false);
      expect(() => server.rotateX509Svids()).toThrow(/dev-closed/);

      const file = join(dir, 'file.sock');
      writeFileSync(file, 'not a socket');
      expect(
        isIdentityError(await rejection(DevWorkloadServer.start({ socketPath: file })), 'dev-socket-in-use'),
      ).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('removes its own temporary directory on close', async () => {
    const server = await DevWorkloadServer.start({ identities: [WEB] });
    const dir = server.socketPath.slice(0, server.socketPath.lastIndexOf('/'));
    expect(existsSync(dir)).toBe(true);
    await server.close();
    expect(existsSync(dir)).toBe(false);
  });
});
