// X.509 against a real spire-server + spire-agent: fetch, rotations with a 30 s entry TTL, hints,
// CA rotation on demand, and redaction when entries are deleted.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { X509Bundle } from '../../../src/bundle/index.js';
import { isIdentityError } from '../../../src/errors/index.js';
import { verifyX509Svid } from '../../../src/svid/index.js';
import {
  type BundleChange,
  type Redaction,
  WorkloadAPIClient,
  type X509Context,
  X509Source,
  type X509SvidRotation,
} from '../../../src/workload/index.js';
import { useSpire } from '../../rig/index.js';
import { nextEvent } from '../../unit/workload/helpers.js';

const TD = 'wl-x509.test';
const MAIN = `spiffe://${TD}/service/main`;
const ROT = `spiffe://${TD}/service/rotating`;
const ALPHA = `spiffe://${TD}/service/alpha`;
const BETA = `spiffe://${TD}/service/beta`;
const GONE = `spiffe://${TD}/service/short-lived-entry`;

describe('X.509 from a real SPIRE agent', () => {
  const spire = useSpire({ trustDomain: TD, name: 'workload-x509' });
  const entryIds: string[] = [];

  it('fetches the X.509 context: the SVID and bundle the agent serves, as spire-agent writes them', async () => {
    const rig = spire();
    entryIds.push((await rig.createEntryAndWait({ spiffeId: MAIN })).id);
    await using client = new WorkloadAPIClient({ address: rig.workloadAddress });
    const ctx = await client.fetchX509Context();
    const svid = ctx.svids.find((s) => s.spiffeId.toString() === MAIN);
    expect(svid, ctx.svids.map(String).join()).toBeDefined();
    const verified = verifyX509Svid(svid!.certificates, ctx.bundles);
    expect(verified.spiffeId.toString()).toBe(MAIN);
    // The same bundle SPIRE's own CLI writes.
    const dir = await rig.fetchX509ToDir();
    const cliBundle = X509Bundle.parse(TD, readFileSync(join(dir, 'bundle.0.pem'), 'utf8'));
    expect(ctx.bundles.getX509Bundle(TD)?.equals(cliBundle)).toBe(true);
    expect((await client.fetchX509Bundles()).getX509Bundle(TD)?.equals(cliBundle)).toBe(true);
  });

  it('watches at least 3 rotations of an SVID whose entry TTL is 30 s', async () => {
    const rig = spire();
    entryIds.push((await rig.createEntryAndWait({ spiffeId: ROT, x509SvidTtl: 30 })).id);
    await using source = await X509Source.create({ address: rig.workloadAddress, select: { spiffeId: ROT } });
    const first = source.getX509Svid();
    // SPIRE backdates 10 s: lifetime = TTL + 10 s.
    const life = first.expiresAt.getTime() - new Date(first.leaf.validFrom).getTime();
    expect(life).toBe(40_000);
    const rotations: X509SvidRotation[] = [];
    const seenAt: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${rotations.length} rotations within 75 s\n${rig.logs()}`)),
        75_000,
      );
      source.on('rotated', (r) => {
        if (r.spiffeId !== ROT) return;
        rotations.push(r);
        seenAt.push(Date.now());
        if (rotations.length === 3) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const serials = [first.leaf.serialNumber, ...rotations.map((r) => r.newSerial)];
    expect(new Set(serials).size).toBe(4);
    for (const [i, r] of rotations.entries()) {
      expect(r.oldSerial).toBe(serials[i]);
      expect(r.selected).toBe(true);
      expect(r.newExpiresAt.getTime()).toBeGreaterThan(r.oldExpiresAt.getTime());
      // Delivered before the old SVID expired (SPIRE renews at about half-life).
      expect(r.oldExpiresAt.getTime()).toBeGreaterThan(seenAt[i]!);
      expect(verifyX509Svid(r.svid.certificates, source.getX509BundleSet()).spiffeId.toString()).toBe(ROT);
    }
    expect(source.getX509Svid()).toBe(rotations[2]!.svid);
    expect(source.isHealthy()).toBe(true);
  });

  it('exposes hints and selects among several SVIDs by hint, SPIFFE ID or picker', async () => {
    const rig = spire();
    entryIds.push((await rig.createEntry({ spiffeId: ALPHA, hint: 'alpha' })).id);
    entryIds.push((await rig.createEntry({ spiffeId: BETA, hint: 'beta' })).id);
    await rig.waitForX509Svid(ALPHA);
    await rig.waitForX509Svid(BETA);
    await using client = new WorkloadAPIClient({ address: rig.workloadAddress });
    const svids = await client.fetchX509Svids();
    const hints = new Map(svids.map((s) => [s.spiffeId.toString(), s.hint]));
    expect(hints.get(ALPHA)).toBe('alpha');
    expect(hints.get(BETA)).toBe('beta');
    expect(hints.get(MAIN)).toBeUndefined();
    expect((await client.fetchX509Svid({ hint: 'beta' })).spiffeId.toString()).toBe(BETA);
    expect((await client.fetchX509Svid({ spiffeId: ALPHA })).hint).toBe('alpha');
    expect(
      (await client.fetchX509Svid((all) => all.find((s) => s.hint === 'alpha'))).spiffeId.toString(),
    ).toBe(ALPHA);
    // The default is the first SVID the agent sends.
    expect((await client.fetchX509Svid()).spiffeId.equals(svids[0]!.spiffeId)).toBe(true);
    await using source = await X509Source.create({ address: rig.workloadAddress, select: { hint: 'beta' } });
    expect(source.getX509Svid().spiffeId.toString()).toBe(BETA);
    // JWT-SVIDs carry the hints too.
    expect((await client.fetchJwtSvid({ audience: 'x', hint: 'alpha' })).spiffeId.toString()).toBe(ALPHA);
  });

  it('shows a CA rotation as a bundle update, then the SVID re-issued under the new CA', async () => {
    const rig = spire();
    await using source = await X509Source.create({
      address: rig.workloadAddress,
      select: { spiffeId: MAIN },
    });
    const oldBundle = source.getX509BundleForTrustDomain(TD);
    const oldSvid = source.getX509Svid();
    const isNew = (a: { raw: Buffer }): boolean => !oldBundle.hasAuthority(a as never);
    const bundleUpdated = nextEvent<[BundleChange]>(source, 'bundleUpdated', 60_000, (c: BundleChange) =>
      Boolean(c.trustDomain.name === TD && c.bundle && (c.bundle as X509Bundle).authorities.some(isNew)),
    );
    // Re-issued: the selected SVID now chains to an authority the old bundle did not have. (SPIRE
    // may answer PermissionDenied for a moment while it re-issues tainted SVIDs; in strict mode
    // that is a short redaction, so this waits on updates rather than on one 'rotated' event.)
    const reissued = nextEvent<[X509Context]>(source, 'update', 60_000, (ctx: X509Context) => {
      const svid = ctx.svids.find((x) => x.spiffeId.toString() === MAIN);
      if (!svid) return false;
      try {
        return isNew(verifyX509Svid(svid.certificates, ctx.bundles).chain.at(-1)!);
      } catch {
        return false;
      }
    });
    await rig.rotateX509Authority({ taint: true });
    const [change] = await bundleUpdated;
    const newAuthorities = (change.bundle as X509Bundle).authorities.filter(isNew);
    await reissued;
    const svid = source.getX509Svid();
    expect(svid.leaf.serialNumber).not.toBe(oldSvid.leaf.serialNumber);
    const root = verifyX509Svid(svid.certificates, source.getX509BundleSet()).chain.at(-1)!;
    expect(newAuthorities.some((a) => a.raw.equals(root.raw))).toBe(true);
    expect(source.isHealthy()).toBe(true);
  });

  it('redacts an identity whose entry is deleted, then everything on PermissionDenied', async () => {
    const rig = spire();
    const entry = await rig.createEntryAndWait({ spiffeId: GONE });
    await using gone = await X509Source.create({ address: rig.workloadAddress, select: { spiffeId: GONE } });
    await using all = await X509Source.create({ address: rig.workloadAddress });
    const removed = nextEvent<[Redaction]>(gone, 'redacted', 30_000, (r: Redaction) =>
      r.spiffeIds.includes(GONE),
    );
    await rig.deleteEntry(entry.id);
    expect((await removed)[0].reason).toBe('removed');
    let err: unknown;
    try {
      gone.getX509Svid();
    } catch (e) {
      err = e;
    }
    expect(isIdentityError(err, 'workload-svid-not-found')).toBe(true);
    expect(gone.isHealthy()).toBe(false);

    // With no entry left, the agent ends the stream with PermissionDenied: spec-strict redaction.
    const denied = nextEvent<[Redaction]>(
      all,
      'redacted',
      30_000,
      (r: Redaction) => r.reason === 'permission-denied',
    );
    for (const id of entryIds) await rig.deleteEntry(id);
    const [r] = await denied;
    expect(r.trustDomains).toContain(TD);
    expect(all.getX509Svids()).toEqual([]);
    expect(() => all.getX509Svid()).toThrow(/workload-no-identity/);
    expect(all.getX509BundleSet().trustDomains()).toEqual([]);
  });
});
