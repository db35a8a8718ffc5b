// JWT-SVIDs against a real SPIRE agent: fetch, agent-side vs local validation (they must agree,
// on acceptance and on refusal), JWT key rotation, and a process of another uid (without and with
// a registration entry).
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { DevWorkloadServer } from '../../../src/dev/index.js';
import { isIdentityError } from '../../../src/errors/index.js';
import { loadWorkloadService } from '../../../src/internal/grpc-workload.js';
import { type BundleChange, JwtSource, WorkloadAPIClient } from '../../../src/workload/index.js';
import { useSpire, waitFor } from '../../rig/index.js';
import { nextEvent, rejection } from '../../unit/workload/helpers.js';
import { runWorkloadChild } from './helpers/child.js';

const TD = 'wl-jwt.test';
const ME = `spiffe://${TD}/service/jwt-client`;
const AUD = `spiffe://${TD}/service/api`;
const OTHER_UID = 23456;

/** Outcome of one validation, for comparing the agent with the local validator. */
async function outcome(
  p: Promise<{ spiffeId: { toString(): string }; claims: Readonly<Record<string, unknown>> }>,
) {
  try {
    const svid = await p;
    return { ok: true, spiffeId: svid.spiffeId.toString(), claims: svid.claims };
  } catch (err) {
    return { ok: false, code: (err as { code?: string }).code };
  }
}

describe('JWT-SVIDs from a real SPIRE agent', () => {
  const spire = useSpire({ trustDomain: TD, name: 'workload-jwt' });

  it('fetches a JWT-SVID for an audience, which validates locally and on the agent with the same result', async () => {
    const rig = spire();
    await rig.createEntryAndWait({ spiffeId: ME, jwtSvidTtl: 120 });
    await using client = new WorkloadAPIClient({ address: rig.workloadAddress });
    await using jwt = await JwtSource.create({ address: rig.workloadAddress });
    const svid = await client.fetchJwtSvid({ audience: AUD });
    expect(svid.spiffeId.toString()).toBe(ME);
    expect(svid.audience).toEqual([AUD]);
    const lifetime = svid.expiresAt.getTime() / 1000 - (svid.claims['iat'] as number);
    expect(lifetime).toBe(120);

    const local = await outcome(jwt.validateJwtSvid(svid.token, AUD));
    const agent = await outcome(client.validateJwtSvid(svid.token, AUD));
    expect(local.ok).toBe(true);
    expect(agent).toEqual(local);
    expect(agent.claims?.['sub']).toBe(ME);
  });

  it('agrees with the agent on refusals: wrong audience, bad signature, foreign key, expired claims', async () => {
    const rig = spire();
    await using client = new WorkloadAPIClient({ address: rig.workloadAddress });
    await using jwt = await JwtSource.create({ address: rig.workloadAddress });
    const token = (await client.fetchJwtSvid({ audience: AUD })).token;
    const [h, p, sig] = token.split('.') as [string, string, string];
    const flipped = `${h}.${p}.${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
    // A token signed by a key SPIRE never published, claiming a SPIRE identity.
    await using impostor = await DevWorkloadServer.start({ trustDomain: TD });
    const forged = await impostor.mintJwtSvid(ME, AUD);
    const cases: [string, string, string][] = [
      ['wrong audience', token, 'spiffe://wl-jwt.test/service/other'],
      ['bad signature', flipped, AUD],
      ['unknown key', forged, AUD],
      ['not a JWT', 'not-a-jwt', AUD],
    ];
    for (const [name, t, aud] of cases) {
      const local = await outcome(jwt.validateJwtSvid(t, aud));
      const agent = await outcome(client.validateJwtSvid(t, aud));
      expect(local.ok, name).toBe(false);
      expect(agent.ok, name).toBe(false);
      expect(agent.code, name).toBe('workload-jwt-svid-rejected');
      expect(local.code, name).toMatch(/^jwtsvid-/);
    }
  });

  it('caches JWT-SVIDs and follows a JWT key rotation', async () => {
    const rig = spire();
    await using jwt = await JwtSource.create({ address: rig.workloadAddress });
    const a = await jwt.fetchJwtSvid({ audience: [AUD, 'second'] });
    expect(await jwt.fetchJwtSvid({ audience: ['second', AUD] })).toBe(a);
    const oldKid = JSON.parse(Buffer.from(a.token.split('.')[0]!, 'base64url').toString()).kid as string;

    const changed = nextEvent<[BundleChange]>(
      jwt,
      'bundleUpdated',
      60_000,
      (c: BundleChange) => c.kind === 'jwt',
    );
    const { newAuthorityId } = await rig.rotateJwtAuthority();
    const [change] = await changed;
    const kids = jwt.getJwtBundleForTrustDomain(TD).keyIds();
    expect(change.trustDomain.name).toBe(TD);
    expect(kids).toContain(oldKid);
    expect(kids.length).toBeGreaterThanOrEqual(2);
    // A token minted now (new audience: not cached) uses the new key and validates locally.
    await waitFor(
      'a JWT-SVID signed with the new key',
      async () => {
        const fresh = await jwt.fetchJwtSvid({ audience: `${AUD}/${Date.now()}` });
        const kid = JSON.parse(Buffer.from(fresh.token.split('.')[0]!, 'base64url').toString()).kid as string;
        return kid === newAuthorityId ? fresh : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    ).then(async (fresh) => {
      expect((await jwt.validateJwtSvid(fresh.token, fresh.audience[0]!)).spiffeId.toString()).toBe(ME);
    });
  });

  it('a process of another uid without an entry gets PermissionDenied; with an entry, its own ID', async () => {
    const rig = spire();
    // Warm the child's transpile cache as root so the other uid starts quickly.
    await runWorkloadChild('fetch', rig.workloadAddress, { timeoutMs: 60_000 });
    const denied = await runWorkloadChild('fetch', rig.workloadAddress, {
      uid: OTHER_UID,
      timeoutMs: 60_000,
    });
    expect(denied.lines[0]).toMatchObject({
      uid: OTHER_UID,
      ok: false,
      code: 'workload-no-identity',
      grpcCode: 7,
    });
    expect(String(denied.lines[0]?.['message'])).toContain('no identity issued');

    const otherId = `spiffe://${TD}/service/uid-${OTHER_UID}`;
    await rig.createEntry({ spiffeId: otherId, selectors: [`unix:uid:${OTHER_UID}`] });
    const got = await waitFor(
      `an SVID for uid ${OTHER_UID}`,
      async () => {
        const r = await runWorkloadChild('fetch', rig.workloadAddress, { uid: OTHER_UID, timeoutMs: 60_000 });
        return r.lines[0]?.['ok'] === true ? r.lines[0] : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(got).toMatchObject({ uid: OTHER_UID, spiffeIds: [otherId] });
    // And this process still sees only its own identities.
    await using client = new WorkloadAPIClient({ address: rig.workloadAddress });
    const mine = (await client.fetchX509Svids()).map((s) => s.spiffeId.toString());
    expect(mine).toContain(ME);
    expect(mine).not.toContain(otherId);
  });

  it('refuses an empty audience locally, as the agent does', async () => {
    const rig = spire();
    await using client = new WorkloadAPIClient({ address: rig.workloadAddress });
    const err = await rejection(client.fetchJwtSvid({ audience: [] }));
    expect(isIdentityError(err, 'workload-invalid-audience')).toBe(true);
    // The agent refuses it with InvalidArgument (sent raw, past our check).
    const { Client } = loadWorkloadService();
    const raw = new Client(
      rig.workloadAddress,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      FetchJWTSVID(
        req: object,
        md: grpc.Metadata,
        cb: (e: grpc.ServiceError | null) => void,
      ): grpc.ClientUnaryCall;
    };
    const md = new grpc.Metadata();
    md.set('workload.spiffe.io', 'true');
    const status = await new Promise<grpc.ServiceError | null>((resolve) =>
      raw.FetchJWTSVID({ audience: [], spiffe_id: '' }, md, (e) => resolve(e)),
    );
    raw.close();
    expect(status?.code).toBe(grpc.status.INVALID_ARGUMENT);
  });
});
