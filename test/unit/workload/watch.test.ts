// Watches (streams) against the dev server: full-set semantics, dedupe, bad messages, the retry
// table, backoff pluggability, redaction, abort/close, and stream sharing.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BundleSet } from '../../../src/bundle/index.js';
import { DevWorkloadServer } from '../../../src/dev/index.js';
import { type IdentityError, isIdentityError } from '../../../src/errors/index.js';
import {
  constantBackoff,
  type ReconnectInfo,
  type Redaction,
  WorkloadAPIClient,
  type X509Context,
} from '../../../src/workload/index.js';
import { nextEvent, recordingBackoff, until } from './helpers.js';

const WEB = 'spiffe://example.org/web';
const DB = 'spiffe://example.org/db';

function serials(ctx: X509Context): string[] {
  return ctx.svids.map((s) => s.leaf.serialNumber.toLowerCase());
}

describe('watchX509Context', () => {
  let server: DevWorkloadServer;
  let client: WorkloadAPIClient;

  beforeEach(async () => {
    server = await DevWorkloadServer.start({
      identities: [WEB, { spiffeId: DB, hint: 'db' }],
      x509Rotation: false,
    });
    client = new WorkloadAPIClient({
      address: server.address,
      backoff: constantBackoff(5),
      noIdentityBackoff: constantBackoff(5),
    });
  });
  afterEach(async () => {
    await client.close();
    await server.close();
  });

  it('yields the current state, then each new complete state', async () => {
    const watch = client.watchX509Context();
    const it = watch[Symbol.asyncIterator]();
    const first = (await it.next()).value as X509Context;
    expect(serials(first)).toEqual([server.serialOf(WEB), server.serialOf(DB, 'db')]);
    const updated = nextEvent<[X509Context, X509Context | undefined]>(watch, 'update');
    const rotated = server.rotateX509Svids(WEB);
    const [next, previous] = await updated;
    expect(previous).toBe(first);
    expect(serials(next)).toEqual([rotated[0], server.serialOf(DB, 'db')]);
    expect((await it.next()).value).toBe(next);
    await watch.close();
    expect((await it.next()).done).toBe(true);
  });

  it('emits nothing for an unchanged re-delivery after a reconnect', async () => {
    const watch = client.watchX509Context();
    const updates: X509Context[] = [];
    watch.on('update', (c) => updates.push(c));
    await until('the first state', () => updates.length === 1);
    const calls = server.callCount('FetchX509SVID');
    const reconnecting = nextEvent<[ReconnectInfo]>(watch, 'reconnecting');
    server.cutStreams('ok'); // the stream ends cleanly; the client reconnects at once
    const [info] = await reconnecting;
    expect(info.delayMs).toBe(0);
    await until(
      'the re-opened stream',
      () => server.callCount('FetchX509SVID') > calls && server.openStreams === 1,
    );
    // The server already re-sent the same state on the new stream. A real change follows on the
    // same stream; had the re-delivery been reported, it would come before it.
    const rotated = server.rotateX509Svids(DB);
    await until('the rotation', () => updates.length >= 2);
    expect(updates.length).toBe(2);
    expect(serials(updates[1]!)[1]).toBe(rotated[0]);
  });

  it('discards a malformed message with an error event and keeps the last good state', async () => {
    const watch = client.watchX509Context();
    const [good] = await nextEvent<[X509Context]>(watch, 'update');
    const errored = nextEvent<[IdentityError]>(watch, 'error');
    server.sendMalformed('FetchX509SVID');
    const [err] = await errored;
    expect(err.code).toBe('workload-malformed-response');
    expect(watch.current).toBe(good);
    // The stream goes on: the next good message is delivered.
    const updated = nextEvent<[X509Context]>(watch, 'update');
    server.rotateX509Svids();
    const [next] = await updated;
    expect(serials(next)).not.toEqual(serials(good));
  });

  it('reports identities missing from a later message as redacted', async () => {
    const watch = client.watchX509Context();
    await nextEvent(watch, 'update');
    const redacted = nextEvent<[Redaction]>(watch, 'redacted');
    const updated = nextEvent<[X509Context]>(watch, 'update');
    server.removeIdentity(DB, 'db');
    expect((await redacted)[0]).toEqual({ reason: 'removed', spiffeIds: [DB], trustDomains: [] });
    expect((await updated)[0].svids.map((s) => s.spiffeId.toString())).toEqual([WEB]);
  });

  it('redacts everything on PermissionDenied, then recovers when an identity comes back', async () => {
    const watch = client.watchX509Context();
    const it = watch[Symbol.asyncIterator]();
    await it.next();
    const redacted = nextEvent<[Redaction]>(watch, 'redacted');
    server.removeIdentity(WEB);
    await nextEvent(watch, 'update'); // DB only
    server.removeIdentity(DB, 'db'); // nothing left: the server ends the stream with PermissionDenied
    await redacted; // the 'removed' one for WEB
    const [r] = await nextEvent<[Redaction]>(
      watch,
      'redacted',
      5000,
      (x: Redaction) => x.reason === 'permission-denied',
    );
    expect(r.spiffeIds).toEqual([DB]);
    expect(r.trustDomains).toEqual(['example.org']);
    expect(watch.current?.svids).toEqual([]);
    expect(watch.current?.bundles.trustDomains()).toEqual([]);
    const back = nextEvent<[X509Context]>(watch, 'update', 5000, (c: X509Context) => c.svids.length > 0);
    await server.addIdentity(WEB);
    expect((await back)[0].svids.map((s) => s.spiffeId.toString())).toEqual([WEB]);
  });

  it('redacts once on repeated PermissionDenied: an already empty state emits nothing more', async () => {
    const watch = client.watchX509Context();
    await nextEvent(watch, 'update');
    const redactions: Redaction[] = [];
    const updates: X509Context[] = [];
    watch.on('redacted', (r: Redaction) => redactions.push(r));
    watch.on('update', (c: X509Context) => updates.push(c));
    let denials = 0;
    const threeDenials = new Promise<void>((resolve) => {
      watch.on('reconnecting', (i: ReconnectInfo) => {
        if (i.error.code === 'workload-no-identity' && ++denials === 3) resolve();
      });
    });
    server.removeIdentity(WEB);
    server.removeIdentity(DB, 'db'); // nothing left: every reconnect ends with PermissionDenied
    await threeDenials;
    expect(redactions.filter((r) => r.reason === 'permission-denied')).toHaveLength(1);
    expect(updates.filter((c) => c.svids.length === 0)).toHaveLength(1);
  });

  it('keeps the last state on PermissionDenied when redaction is turned off', async () => {
    const lenient = new WorkloadAPIClient({
      address: server.address,
      redactOnPermissionDenied: false,
      noIdentityBackoff: constantBackoff(5),
    });
    try {
      const watch = lenient.watchX509Context();
      const [first] = await nextEvent<[X509Context]>(watch, 'update');
      let redactions = 0;
      watch.on('redacted', () => redactions++);
      const reconnecting = nextEvent<[ReconnectInfo]>(
        watch,
        'reconnecting',
        5000,
        (i: ReconnectInfo) => i.grpcCode === 7,
      );
      server.cutStreams('permission-denied');
      const [info] = await reconnecting;
      expect(info.error.code).toBe('workload-no-identity');
      expect(watch.current).toBe(first);
      expect(redactions).toBe(0);
    } finally {
      await lenient.close();
    }
  });

  it('ends for good on InvalidArgument: the iterator throws and no retry is made', async () => {
    server.injectFault({ type: 'status', code: 3, message: 'bad request', rpc: 'FetchX509SVID' });
    const watch = client.watchX509Context();
    const closed = nextEvent(watch, 'closed');
    const err = await watch[Symbol.asyncIterator]()
      .next()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isIdentityError(err, 'workload-invalid-argument')).toBe(true);
    await closed;
    expect(watch.closed).toBe(true);
    expect(watch.failure).toBe(err);
    expect(server.callCount('FetchX509SVID')).toBe(1);
  });

  it('ends for good on Unimplemented', async () => {
    server.injectFault({ type: 'status', code: 12, rpc: 'FetchJWTBundles' });
    const watch = client.watchJwtBundles();
    const [err] = await nextEvent<[IdentityError]>(watch, 'error');
    expect(err.code).toBe('workload-unimplemented');
    await until('the watch to close', () => watch.closed);
    expect(server.callCount('FetchJWTBundles')).toBe(1);
  });

  it('retries Unavailable with the pluggable backoff and resets it only after a good message', async () => {
    const fast = recordingBackoff(1);
    const slow = recordingBackoff(1);
    const c = new WorkloadAPIClient({
      address: server.address,
      backoff: fast.factory,
      noIdentityBackoff: slow.factory,
    });
    try {
      server.injectFault({ type: 'unavailable', calls: 3, rpc: 'FetchX509SVID' });
      const watch = c.watchX509Context();
      const attempts: number[] = [];
      watch.on('reconnecting', (i) => attempts.push(i.attempt));
      await nextEvent(watch, 'update');
      expect(attempts).toEqual([1, 2, 3]);
      expect(fast.log).toEqual(['next', 'next', 'next', 'reset']);
      expect(slow.log).toEqual(['reset']);
      expect(server.callCount('FetchX509SVID')).toBe(4);
    } finally {
      await c.close();
    }
  });

  it('retries PermissionDenied on the slow lane', async () => {
    const fast = recordingBackoff(1);
    const slow = recordingBackoff(1);
    const c = new WorkloadAPIClient({
      address: server.address,
      backoff: fast.factory,
      noIdentityBackoff: slow.factory,
    });
    try {
      server.injectFault({ type: 'permission-denied', calls: 2, rpc: 'FetchX509SVID' });
      const watch = c.watchX509Context();
      const codes: number[] = [];
      watch.on('reconnecting', (i) => codes.push(i.grpcCode));
      await nextEvent(watch, 'update');
      expect(codes).toEqual([7, 7]);
      expect(slow.log).toEqual(['next', 'next', 'reset']);
      expect(fast.log).toEqual(['reset']);
    } finally {
      await c.close();
    }
  });

  it('does not reset the backoff when a stream is accepted and then cut without a message', async () => {
    const fast = recordingBackoff(1);
    const c = new WorkloadAPIClient({ address: server.address, backoff: fast.factory });
    try {
      // Two streams are accepted but held without an answer, and cut; the third answers.
      server.injectFault({ type: 'slow', delayMs: 60_000, calls: 2, rpc: 'FetchX509SVID' });
      const watch = c.watchX509Context();
      const attempts: number[] = [];
      watch.on('reconnecting', (i) => attempts.push(i.attempt));
      for (let n = 1; n <= 2; n++) {
        await until(
          `held stream ${n}`,
          () => server.callCount('FetchX509SVID') === n && server.openStreams === 1,
        );
        server.cutStreams('unavailable');
      }
      await nextEvent(watch, 'update');
      expect(attempts).toEqual([1, 2]);
      expect(fast.log).toEqual(['next', 'next', 'reset']);
    } finally {
      await c.close();
    }
  });

  it('shares one stream among watches of a kind and closes it with the last one', async () => {
    const a = client.watchX509Context();
    const b = client.watchX509Context();
    await Promise.all([nextEvent(a, 'update'), nextEvent(b, 'update')]);
    expect(server.openStreams).toBe(1);
    expect(server.callCount('FetchX509SVID')).toBe(1);
    // A late watch gets the current state at once, without a new call.
    const c = client.watchX509Context();
    expect(c.current).toBe(a.current);
    await a.close();
    await b.close();
    expect(server.openStreams).toBe(1);
    await c.close();
    await until('the stream to close', () => server.openStreams === 0);
  });

  it('ends when its AbortSignal aborts, and on client close', async () => {
    const ac = new AbortController();
    const w1 = client.watchX509Context({ signal: ac.signal });
    const w2 = client.watchX509Bundles();
    await Promise.all([nextEvent(w1, 'update'), nextEvent(w2, 'update')]);
    const closed1 = nextEvent(w1, 'closed');
    ac.abort();
    await closed1;
    expect(w1.closed).toBe(true);
    const closed2 = nextEvent(w2, 'closed');
    await client.close();
    await closed2;
    expect(w2.closed).toBe(true);
    expect(client.watchX509Context.bind(client)).toThrow(/workload-closed/);
  });

  it('an already aborted signal gives a closed watch that iterates nothing', async () => {
    const w = client.watchJwtBundles({ signal: AbortSignal.abort() });
    expect(w.closed).toBe(true);
    expect((await w[Symbol.asyncIterator]().next()).done).toBe(true);
    expect(server.callCount('FetchJWTBundles')).toBe(0);
  });

  it('turns a throwing listener into an error event instead of a crash', async () => {
    const watch = client.watchX509Context();
    const buggy = (): void => {
      throw new Error('listener bug');
    };
    watch.on('update', buggy);
    const [err] = await nextEvent<[IdentityError]>(watch, 'error');
    expect(err.code).toBe('workload-listener-threw');
    expect((err.cause as Error).message).toBe('listener bug');
    // The stream survived it: the next change is delivered.
    watch.off('update', buggy);
    const updated = nextEvent(watch, 'update');
    server.rotateX509Svids();
    await updated;
  });
});

describe('watchX509Bundles and watchJwtBundles', () => {
  it('follow bundle changes and report removed trust domains', async () => {
    await using server = await DevWorkloadServer.start({ identities: [WEB], x509Rotation: false });
    await using client = new WorkloadAPIClient({ address: server.address });
    await using other = await DevWorkloadServer.start({ trustDomain: 'partner.test', x509Rotation: false });
    const x509 = client.watchX509Bundles();
    const jwt = client.watchJwtBundles();
    const [first] = await nextEvent<[BundleSet]>(x509, 'update');
    await nextEvent(jwt, 'update');
    expect(first.trustDomains().map(String)).toEqual(['example.org']);

    const x509Next = nextEvent<[BundleSet]>(x509, 'update');
    const jwtNext = nextEvent<[BundleSet]>(jwt, 'update');
    server.setFederatedBundle('partner.test', { x509: other.x509Bundle(), jwt: other.jwtBundle() });
    expect((await x509Next)[0].getX509Bundle('partner.test')?.equals(other.x509Bundle())).toBe(true);
    expect((await jwtNext)[0].getJwtBundle('partner.test')?.equals(other.jwtBundle())).toBe(true);

    const jwtRotated = nextEvent<[BundleSet]>(jwt, 'update');
    const kid = server.rotateJwtAuthority();
    expect((await jwtRotated)[0].getJwtBundle('example.org')?.keyIds()).toContain(kid);

    const redacted = nextEvent<[Redaction]>(x509, 'redacted');
    server.removeFederatedBundle('partner.test');
    expect((await redacted)[0]).toEqual({ reason: 'removed', spiffeIds: [], trustDomains: ['partner.test'] });
  });
});
