// Lifecycle against a real SPIRE agent: no socket at start (bounded wait, then connect), agent
// stop/restart mid-watch (recovery with no user action and no duplicate events), and a process
// that exits by itself after closing its client and source.
import { describe, expect, it } from 'vitest';
import { isIdentityError } from '../../../src/errors/index.js';
import { type ReconnectInfo, type X509Context, X509Source } from '../../../src/workload/index.js';
import { useSpire } from '../../rig/index.js';
import { nextEvent, rejection } from '../../unit/workload/helpers.js';
import { runWorkloadChild } from './helpers/child.js';

const TD = 'wl-life.test';
const ME = `spiffe://${TD}/service/lifecycle`;

/** Everything an update carries that matters: SVID serials and hints, bundle authorities. */
function digest(ctx: X509Context): string {
  return JSON.stringify([
    ctx.svids.map((s) => [s.spiffeId.toString(), s.hint ?? '', s.leaf.serialNumber]),
    ctx.bundles.x509Bundles.map((b) => [b.trustDomain.name, b.authorities.map((a) => a.fingerprint256)]),
  ]);
}

describe('Workload API lifecycle with a real SPIRE agent', () => {
  const spire = useSpire({ trustDomain: TD, name: 'workload-lifecycle' });

  it('with no agent socket, create() gives up after the bounded wait naming the address and last status', async () => {
    const rig = spire();
    await rig.createEntryAndWait({ spiffeId: ME });
    await rig.stopAgent();
    const err = await rejection(
      X509Source.create({ address: rig.workloadAddress, initialSyncTimeoutMs: 1500 }),
    );
    expect(isIdentityError(err, 'workload-initial-sync-timeout')).toBe(true);
    expect(err.message).toContain(rig.workloadAddress);
    expect(err.message).toContain('UNAVAILABLE');
  });

  it('then connects by itself once the agent (and its socket) appears', async () => {
    const rig = spire();
    const pending = X509Source.create({ address: rig.workloadAddress, initialSyncTimeoutMs: 90_000 });
    await rig.startAgent();
    await using source = await pending;
    expect(source.getX509Svid().spiffeId.toString()).toBe(ME);
    expect(source.isHealthy()).toBe(true);
  });

  it('recovers from an agent stop/restart mid-watch with no user action and no duplicate events', async () => {
    const rig = spire();
    await using source = await X509Source.create({ address: rig.workloadAddress });
    const before = source.getX509Svid();
    const updates: string[] = [];
    let last = digest(source.context!);
    const duplicates: string[] = [];
    source.on('update', (ctx) => {
      const d = digest(ctx);
      if (d === last) duplicates.push(d);
      last = d;
      updates.push(d);
    });
    const reconnecting = nextEvent<[ReconnectInfo]>(source, 'reconnecting', 30_000);
    await rig.stopAgent();
    const [info] = await reconnecting;
    expect(info.error.code).toMatch(/^workload-(unavailable|rpc-failed)$/);
    // While the agent is down the source keeps its last SVID (transient failure, not a redaction).
    expect(source.getX509Svid()).toBe(before);

    const back = nextEvent<[X509Context]>(source, 'update', 90_000, (ctx: X509Context) =>
      ctx.svids.some((s) => s.spiffeId.toString() === ME && s.leaf.serialNumber !== before.leaf.serialNumber),
    );
    await rig.startAgent();
    await back;
    // The restarted agent (in-memory keys) issued a new SVID: the source serves it, healthy.
    expect(source.getX509Svid().leaf.serialNumber).not.toBe(before.leaf.serialNumber);
    expect(source.isHealthy()).toBe(true);
    expect(duplicates).toEqual([]);
    expect(updates.length).toBeGreaterThanOrEqual(1);
  });

  it('a process that closes its client and source exits by itself (nothing keeps it alive)', async () => {
    const rig = spire();
    const r = await runWorkloadChild('watch-and-close', rig.workloadAddress, { timeoutMs: 90_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.lines[0]).toMatchObject({ watched: [ME] });
    expect(r.lines[1]).toMatchObject({ closed: true });
    // It printed its last line and exited promptly: no stream, timer or socket was left behind.
    expect(r.exitAfterLastLineMs).toBeLessThan(2000);
  });
});
