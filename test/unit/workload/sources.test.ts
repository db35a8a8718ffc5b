// X509Source, JwtSource and BundleSource against the dev server.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DevWorkloadServer } from '../../../src/dev/index.js';
import { type IdentityError, isIdentityError } from '../../../src/errors/index.js';
import { verifyX509Svid } from '../../../src/svid/index.js';
import {
  type BundleChange,
  BundleSource,
  constantBackoff,
  JwtSource,
  type Redaction,
  WorkloadAPIClient,
  workloadChannels,
  X509Source,
  type X509SvidRotation,
} from '../../../src/workload/index.js';
import { nextEvent, rejection, until } from './helpers.js';

const WEB = 'spiffe://example.org/web';
const DB = 'spiffe://example.org/db';
const fast = { backoff: constantBackoff(5), noIdentityBackoff: constantBackoff(5) };

afterEach(() => {
  vi.useRealTimers();
});

describe('X509Source', () => {
  it('resolves after the first update and serves the default (first) SVID', async () => {
    await using server = await DevWorkloadServer.start({
      identities: [WEB, { spiffeId: DB, hint: 'db' }],
      x509Rotation: false,
    });
    await using source = await X509Source.create({ address: server.address });
    expect(source.getX509Svid().spiffeId.toString()).toBe(WEB);
    expect(source.getX509Svids().length).toBe(2);
    expect(source.getX509BundleForTrustDomain('example.org').equals(server.x509Bundle())).toBe(true);
    expect(source.isHealthy()).toBe(true);
    expect(source.expiresAt?.getTime()).toBe(source.getX509Svid().expiresAt.getTime());
    expect(source.lastUpdate).toBeInstanceOf(Date);
    const identity = source.getIdentity();
    expect(identity).toMatchObject({ trustDomain: 'example.org', path: '/web', renewable: true });
    expect(identity.svid).toBe(source.getX509Svid());
    expect(identity.expiresAt).toEqual(identity.svid.expiresAt);
  });

  it('selects by hint, by SPIFFE ID or with a picker', async () => {
    await using server = await DevWorkloadServer.start({
      identities: [WEB, { spiffeId: DB, hint: 'db' }],
      x509Rotation: false,
    });
    await using byHint = await X509Source.create({ address: server.address, select: { hint: 'db' } });
    expect(byHint.getX509Svid().spiffeId.toString()).toBe(DB);
    await using byId = await X509Source.create({ address: server.address, select: { spiffeId: DB } });
    expect(byId.getX509Svid().hint).toBe('db');
    await using byPicker = await X509Source.create({ address: server.address, select: (svids) => svids[1] });
    expect(byPicker.getX509Svid().spiffeId.toString()).toBe(DB);
    const err = await rejection(X509Source.create({ address: server.address, select: { hint: 'none' } }));
    expect(isIdentityError(err, 'workload-svid-not-found')).toBe(true);
  });

  it('emits rotated with old and new serial and expiry, then update', async () => {
    await using server = await DevWorkloadServer.start({
      identities: [WEB, { spiffeId: DB, hint: 'db' }],
      x509Rotation: false,
    });
    await using source = await X509Source.create({ address: server.address, select: { hint: 'db' } });
    const old = source.getX509Svid();
    const events: string[] = [];
    source.on('rotated', () => events.push('rotated'));
    source.on('update', () => events.push('update'));
    const rotated = nextEvent<[X509SvidRotation]>(source, 'rotated');
    const [newSerial] = server.rotateX509Svids(DB);
    const [r] = await rotated;
    expect(r).toMatchObject({ spiffeId: DB, hint: 'db', selected: true });
    expect(r.oldSerial.toLowerCase()).toBe(old.leaf.serialNumber.toLowerCase());
    expect(r.newSerial.toLowerCase()).toBe(newSerial);
    expect(r.oldExpiresAt).toEqual(old.expiresAt);
    expect(r.newExpiresAt).toEqual(r.svid.expiresAt);
    expect(source.getX509Svid()).toBe(r.svid);
    await until('the update event', () => events.includes('update'));
    expect(events).toEqual(['rotated', 'update']);
  });

  it('publishes rotations and errors on diagnostics channels, without key material', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    await using source = await X509Source.create({ address: server.address });
    const rotations: object[] = [];
    const errors: object[] = [];
    const onRotated = (m: unknown): void => {
      rotations.push(m as object);
    };
    const onError = (m: unknown): void => {
      errors.push(m as object);
    };
    subscribe(workloadChannels.svidRotated, onRotated);
    subscribe(workloadChannels.error, onError);
    try {
      const rotated = nextEvent(source, 'rotated');
      const [serial] = server.rotateX509Svids();
      await rotated;
      expect(rotations).toEqual([expect.objectContaining({ spiffeId: WEB, hint: undefined })]);
      expect(String((rotations[0] as { newSerial: string }).newSerial).toLowerCase()).toBe(serial);
      expect(JSON.stringify(rotations)).not.toMatch(/PRIVATE|privateKey|svid"/);
      const errored = nextEvent(source, 'error');
      server.sendMalformed('FetchX509SVID');
      await errored;
      expect(errors).toEqual([
        expect.objectContaining({ source: 'X509Source', code: 'workload-malformed-response' }),
      ]);
    } finally {
      unsubscribe(workloadChannels.svidRotated, onRotated);
      unsubscribe(workloadChannels.error, onError);
    }
  });

  it('re-issues on its own at half-life (scheduled rotation on the dev server)', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: 300 });
    await using source = await X509Source.create({ address: server.address });
    const [r] = await nextEvent<[X509SvidRotation]>(source, 'rotated', 5000);
    expect(r.newSerial).not.toBe(r.oldSerial);
  });

  it('reports a CA rotation as bundleUpdated, and the SVID re-issued under the new CA', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    await using source = await X509Source.create({ address: server.address });
    const bundleUpdated = nextEvent<[BundleChange]>(source, 'bundleUpdated');
    const rotated = nextEvent<[X509SvidRotation]>(source, 'rotated');
    const ca = server.rotateX509Authority();
    const [change] = await bundleUpdated;
    expect(change.kind).toBe('x509');
    expect(change.trustDomain.name).toBe('example.org');
    const authorities = (change.bundle as { authorities: readonly { raw: Buffer }[] }).authorities;
    expect(authorities.length).toBe(2);
    const [r] = await rotated;
    const verified = verifyX509Svid(r.svid.certificates, source.getX509BundleSet());
    expect(Buffer.from(verified.chain.at(-1)!.raw).equals(Buffer.from(ca.der))).toBe(true);
  });

  it('redacts on removal and on PermissionDenied: getX509Svid fails closed, and recovers', async () => {
    await using server = await DevWorkloadServer.start({
      identities: [WEB, { spiffeId: DB, hint: 'db' }],
      x509Rotation: false,
    });
    await using source = await X509Source.create({
      address: server.address,
      select: { hint: 'db' },
      ...fast,
    });
    const removed = nextEvent<[Redaction]>(source, 'redacted');
    server.removeIdentity(DB, 'db');
    expect((await removed)[0]).toMatchObject({ reason: 'removed', spiffeIds: [DB] });
    expect(() => source.getX509Svid()).toThrow(/workload-svid-not-found/);
    expect(source.isHealthy()).toBe(false);

    const denied = nextEvent<[Redaction]>(source, 'redacted');
    server.removeIdentity(WEB);
    expect((await denied)[0].reason).toBe('permission-denied');
    let err: unknown;
    try {
      source.getX509Svid();
    } catch (e) {
      err = e;
    }
    expect(isIdentityError(err, 'workload-no-identity')).toBe(true);
    expect(source.getX509Svids()).toEqual([]);

    const back = nextEvent(source, 'update');
    await server.addIdentity({ spiffeId: DB, hint: 'db' });
    await back;
    expect(source.getX509Svid().spiffeId.toString()).toBe(DB);
    expect(source.isHealthy()).toBe(true);
  });

  it('never serves an expired SVID (fails closed) and turns unhealthy', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    await using source = await X509Source.create({ address: server.address });
    const expiresAt = source.getX509Svid().expiresAt.getTime();
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(expiresAt + 1000);
    expect(() => source.getX509Svid()).toThrow(/workload-svid-expired/);
    expect(() => source.getIdentity()).toThrow(/workload-svid-expired/);
    expect(source.isHealthy()).toBe(false);
  });

  it('rejects after initialSyncTimeoutMs naming the address and the last gRPC status', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tk-nosock-'));
    try {
      const address = `unix://${join(dir, 'missing.sock')}`;
      const started = Date.now();
      const err = await rejection(X509Source.create({ address, initialSyncTimeoutMs: 300, ...fast }));
      expect(isIdentityError(err, 'workload-initial-sync-timeout')).toBe(true);
      expect(err.message).toContain(address);
      expect(err.message).toContain('UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names PERMISSION_DENIED when the agent has no identity for the caller', async () => {
    await using server = await DevWorkloadServer.start({ identities: [], x509Rotation: false });
    const err = await rejection(
      X509Source.create({ address: server.address, initialSyncTimeoutMs: 300, ...fast }),
    );
    expect(isIdentityError(err, 'workload-initial-sync-timeout')).toBe(true);
    expect(err.message).toMatch(/PERMISSION_DENIED \(no identity issued\)/);
  });

  it('fails create() at once on InvalidArgument instead of waiting for the timeout', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    server.injectFault({ type: 'status', code: 3, rpc: 'FetchX509SVID' });
    const started = Date.now();
    const err = await rejection(X509Source.create({ address: server.address, initialSyncTimeoutMs: 20_000 }));
    expect(isIdentityError(err, 'workload-invalid-argument')).toBe(true);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('create() honours an AbortSignal', async () => {
    const ac = new AbortController();
    const pending = X509Source.create({ address: 'unix:///tmp/tk-never.sock', signal: ac.signal, ...fast });
    ac.abort(new Error('shutdown'));
    const err = await rejection(pending);
    expect(isIdentityError(err, 'workload-aborted')).toBe(true);
  });

  it('waits for a socket that appears later, then connects', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tk-late-'));
    const socketPath = join(dir, 'api.sock');
    try {
      const pending = X509Source.create({
        address: `unix://${socketPath}`,
        initialSyncTimeoutMs: 10_000,
        ...fast,
      });
      expect(existsSync(socketPath)).toBe(false);
      await using server = await DevWorkloadServer.start({
        socketPath,
        identities: [WEB],
        x509Rotation: false,
      });
      await using source = await pending;
      expect(source.getX509Svid().spiffeId.toString()).toBe(WEB);
      expect(server.callCount('FetchX509SVID')).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('emits reconnecting and recovers with no user action after a stream cut', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    await using source = await X509Source.create({ address: server.address, ...fast });
    const reconnecting = nextEvent(source, 'reconnecting');
    server.cutStreams('unavailable');
    await reconnecting;
    const rotated = nextEvent(source, 'rotated');
    await until('the stream to be back', () => server.openStreams === 1);
    server.rotateX509Svids();
    await rotated;
    expect(source.isHealthy()).toBe(true);
  });

  it('reports a malformed message as an error event and keeps serving', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    await using source = await X509Source.create({ address: server.address });
    const svid = source.getX509Svid();
    const errored = nextEvent<[IdentityError]>(source, 'error');
    server.sendMalformed('FetchX509SVID');
    expect((await errored)[0].code).toBe('workload-malformed-response');
    expect(source.getX509Svid()).toBe(svid);
  });

  it('an error nobody listens to does not crash (the internal listener takes it)', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    await using source = await X509Source.create({ address: server.address });
    expect(source.listenerCount('error')).toBe(1);
    const updated = nextEvent(source, 'update');
    server.sendMalformed('FetchX509SVID');
    server.rotateX509Svids();
    await updated;
  });

  it('closes only the client it made', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    const client = new WorkloadAPIClient({ address: server.address });
    const borrowed = await X509Source.create({ client });
    await borrowed.close();
    expect(client.closed).toBe(false);
    expect((await client.fetchX509Svid()).spiffeId.toString()).toBe(WEB);
    await client.close();
    const err = await rejection(X509Source.create({ client }));
    expect(isIdentityError(err, 'workload-closed')).toBe(true);

    const owned = await X509Source.create({ address: server.address });
    await owned.close();
    await owned.close();
    expect(owned.closed).toBe(true);
    expect(() => owned.getX509Svid()).toThrow(/workload-closed/);
    expect(owned.isHealthy()).toBe(false);
    await until('the stream to close', () => server.openStreams === 0);
  });
});

describe('JwtSource', () => {
  it('caches per (subject, sorted audience set) and serves hits without a call', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB, { spiffeId: DB, hint: 'db' }] });
    await using source = await JwtSource.create({ address: server.address });
    const a = await source.fetchJwtSvid({ audience: ['a', 'b'] });
    expect(server.callCount('FetchJWTSVID')).toBe(1);
    const b = await source.fetchJwtSvid({ audience: ['b', 'a', 'a'] });
    expect(b).toBe(a);
    expect((await source.fetchJwtSvid({ audience: ['a', 'b'], hint: 'db' })).spiffeId.toString()).toBe(DB);
    expect(server.callCount('FetchJWTSVID')).toBe(1);
    await source.fetchJwtSvid({ audience: ['a', 'b'], subject: DB });
    await source.fetchJwtSvid({ audience: 'a' });
    expect(server.callCount('FetchJWTSVID')).toBe(3);
    expect(source.cacheSize).toBe(3);
  });

  it('joins concurrent identical requests into one call', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB] });
    await using source = await JwtSource.create({ address: server.address });
    server.injectFault({ type: 'slow', delayMs: 50, rpc: 'FetchJWTSVID' });
    const results = await Promise.all(
      Array.from({ length: 20 }, () => source.fetchJwtSvid({ audience: 'x' })),
    );
    expect(new Set(results).size).toBe(1);
    expect(server.callCount('FetchJWTSVID')).toBe(1);
  });

  it('one caller aborting does not fail the others sharing the call', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB] });
    await using source = await JwtSource.create({ address: server.address });
    server.injectFault({ type: 'slow', delayMs: 100, rpc: 'FetchJWTSVID' });
    const ac = new AbortController();
    const aborted = source.fetchJwtSvid({ audience: 'x', signal: ac.signal });
    const other = source.fetchJwtSvid({ audience: 'x' });
    ac.abort();
    expect(isIdentityError(await rejection(aborted), 'workload-aborted')).toBe(true);
    expect((await other).spiffeId.toString()).toBe(WEB);
  });

  it('refreshes once half the lifetime has passed', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], jwtSvidTtlMs: 60_000 });
    await using source = await JwtSource.create({ address: server.address });
    const first = await source.fetchJwtSvid({ audience: 'x' });
    const iat = (first.claims['iat'] as number) * 1000;
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(iat + 29_000);
    expect(await source.fetchJwtSvid({ audience: 'x' })).toBe(first);
    vi.setSystemTime(iat + 31_000);
    const second = await source.fetchJwtSvid({ audience: 'x' });
    expect(second).not.toBe(first);
    expect(server.callCount('FetchJWTSVID')).toBe(2);
  });

  it('bounds the cache, evicting the oldest entry', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB] });
    await using source = await JwtSource.create({ address: server.address, maxCacheEntries: 2 });
    await source.fetchJwtSvid({ audience: 'a' });
    await source.fetchJwtSvid({ audience: 'b' });
    await source.fetchJwtSvid({ audience: 'c' });
    expect(source.cacheSize).toBe(2);
    await source.fetchJwtSvid({ audience: 'a' });
    expect(server.callCount('FetchJWTSVID')).toBe(4);
  });

  it('drops cached tokens when the agent says PermissionDenied', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB] });
    await using source = await JwtSource.create({ address: server.address, ...fast });
    await source.fetchJwtSvid({ audience: 'a' });
    const redacted = nextEvent<[Redaction]>(source, 'redacted');
    server.cutStreams('permission-denied');
    expect((await redacted)[0].reason).toBe('permission-denied');
    expect(source.cacheSize).toBe(0);
  });

  it('validates peer tokens locally and follows JWT key rotation', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB] });
    await using source = await JwtSource.create({ address: server.address });
    const token = await server.mintJwtSvid('spiffe://example.org/peer', 'me');
    expect((await source.validateJwtSvid(token, 'me')).spiffeId.toString()).toBe('spiffe://example.org/peer');
    const wrong = await rejection(source.validateJwtSvid(token, 'other'));
    expect((wrong as { code: string }).code).toMatch(/^jwtsvid-/);

    const changed = nextEvent<[BundleChange]>(source, 'bundleUpdated');
    const kid = server.rotateJwtAuthority({ keepPrevious: false });
    const [change] = await changed;
    expect(change.kind).toBe('jwt');
    expect(source.getJwtBundleForTrustDomain('example.org').keyIds()).toEqual([kid]);
    // The old key is gone: a token signed by it no longer validates; a new one does.
    expect(((await rejection(source.validateJwtSvid(token, 'me'))) as { code: string }).code).toBe(
      'jwtsvid-unknown-kid',
    );
    const fresh = await server.mintJwtSvid('spiffe://example.org/peer', 'me');
    expect((await source.validateJwtSvid(fresh, 'me')).spiffeId.toString()).toBe('spiffe://example.org/peer');
    expect(source.isHealthy()).toBe(true);
  });

  it('rejects bad arguments and calls after close', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB] });
    const source = await JwtSource.create({ address: server.address });
    expect(
      isIdentityError(await rejection(source.fetchJwtSvid({ audience: [] })), 'workload-invalid-audience'),
    ).toBe(true);
    await source.close();
    expect(isIdentityError(await rejection(source.fetchJwtSvid({ audience: 'a' })), 'workload-closed')).toBe(
      true,
    );
    expect(source.isHealthy()).toBe(false);
  });
});

describe('BundleSource', () => {
  it('follows X.509 and JWT bundles, own and federated, and reports removals', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    await using partner = await DevWorkloadServer.start({ trustDomain: 'partner.test', x509Rotation: false });
    await using source = await BundleSource.create({ address: server.address });
    expect(source.getX509BundleForTrustDomain('example.org').equals(server.x509Bundle())).toBe(true);
    expect(source.getJwtBundleForTrustDomain('example.org').equals(server.jwtBundle())).toBe(true);
    expect(source.isHealthy()).toBe(true);

    const changes: BundleChange[] = [];
    source.on('bundleUpdated', (c) => changes.push(c));
    server.setFederatedBundle('partner.test', { x509: partner.x509Bundle(), jwt: partner.jwtBundle() });
    await until('both partner bundles', () => changes.length === 2);
    expect(changes.map((c) => [c.kind, c.trustDomain.name]).sort()).toEqual([
      ['jwt', 'partner.test'],
      ['x509', 'partner.test'],
    ]);
    expect(source.getBundleSet().getX509Bundle('partner.test')?.equals(partner.x509Bundle())).toBe(true);

    const redactions: Redaction[] = [];
    source.on('redacted', (r) => redactions.push(r));
    server.removeFederatedBundle('partner.test');
    await until('both removals', () => changes.length === 4 && redactions.length === 2);
    expect(changes.slice(2).every((c) => c.bundle === undefined)).toBe(true);
    expect(() => source.getX509BundleForTrustDomain('partner.test')).toThrow(/workload-bundle-not-found/);
  });

  it('follows only the kinds asked for', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    await using source = await BundleSource.create({ address: server.address, kinds: ['jwt'] });
    expect(server.callCount('FetchX509Bundles')).toBe(0);
    expect(source.getBundleSet().x509Bundles).toEqual([]);
    expect(source.getBundleSet().jwtBundles.length).toBe(1);
    expect(
      isIdentityError(
        await rejection(BundleSource.create({ address: server.address, kinds: [] })),
        'workload-invalid-option',
      ),
    ).toBe(true);
  });

  it('names every stream in the initial sync timeout', async () => {
    await using server = await DevWorkloadServer.start({ identities: [], x509Rotation: false });
    const err = await rejection(
      BundleSource.create({ address: server.address, initialSyncTimeoutMs: 300, ...fast }),
    );
    expect(isIdentityError(err, 'workload-initial-sync-timeout')).toBe(true);
    expect(err.message).toContain('X.509 bundles and JWT bundles');
    expect(err.message).toContain('PERMISSION_DENIED');
  });
});
