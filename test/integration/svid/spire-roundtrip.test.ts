// The identity core reads what real SPIRE produces: the SPIFFE bundle from
// `spire-server bundle show -format spiffe`, the SVIDs and bundle written by
// `spire-agent api fetch x509 -write`, and JWT-SVIDs from `spire-agent api fetch jwt`.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BundleSet, JwtBundle, SpiffeBundle, X509Bundle } from '../../../src/bundle/index.js';
import { SpiffeId, TrustDomain } from '../../../src/spiffeid/index.js';
import { parseJwtSvidInsecure, validateJwtSvid, verifyX509Svid, X509Svid } from '../../../src/svid/index.js';
import { useSpire } from '../../rig/index.js';

const td = 'roundtrip.test';
const workload = `spiffe://${td}/service/roundtrip`;

function tokenFrom(cliOutput: string): string {
  const token = cliOutput.split(/\s+/).find((w) => w.startsWith('eyJ') && w.split('.').length === 3);
  if (!token) throw new Error(`no token in spire-agent output: ${cliOutput}`);
  return token;
}

describe('identity core against real SPIRE output', () => {
  const spire = useSpire({ trustDomain: td, name: 'svid-roundtrip' });

  it('parses the SPIFFE bundle document and marshals it back to an equal bundle', async () => {
    const doc = await spire().bundle('spiffe');
    const bundle = SpiffeBundle.parse(td, doc);
    expect(bundle.trustDomain.equals(TrustDomain.parse(td))).toBe(true);
    expect(bundle.x509Bundle().authorities).toHaveLength(1);
    expect(bundle.jwtBundle().keyIds().length).toBeGreaterThanOrEqual(1);
    expect(SpiffeBundle.parse(td, bundle.marshal()).equals(bundle)).toBe(true);
    // The PEM form of the same bundle holds the same root.
    const pem = X509Bundle.parse(td, await spire().bundle('pem'));
    expect(pem.equals(bundle.x509Bundle())).toBe(true);
  });

  it('parses and verifies the X509-SVID the agent writes', async () => {
    const rig = spire();
    await rig.createEntryAndWait({ spiffeId: workload });
    const dir = await rig.fetchX509ToDir();
    const files = readdirSync(dir);
    const index = files
      .filter((f) => /^svid\.\d+\.pem$/.test(f))
      .map((f) => f.split('.')[1])
      .find((i) => readFileSync(join(dir, `svid.${i}.pem`), 'utf8').length > 0)!;
    const svid = X509Svid.parse(
      readFileSync(join(dir, `svid.${index}.pem`)),
      readFileSync(join(dir, `svid.${index}.key`)),
    );
    expect(svid.spiffeId.equals(workload)).toBe(true);
    expect(svid.expiresAt.getTime()).toBeGreaterThan(Date.now());

    const bundle = X509Bundle.parse(td, readFileSync(join(dir, `bundle.${index}.pem`)));
    const verified = verifyX509Svid(svid.certificates, new BundleSet(bundle));
    expect(verified.spiffeId.toString()).toBe(workload);
    // A bundle of another trust domain holding the same root must not vouch for it.
    const foreign = X509Bundle.fromAuthorities('elsewhere.test', bundle.authorities);
    expect(() => verifyX509Svid(svid.certificates, new BundleSet(foreign))).toThrow(/./);
  });

  it("validates a JWT-SVID minted by the agent with the server's JWT bundle", async () => {
    const rig = spire();
    const token = tokenFrom(await rig.fetchJwtViaCli('spiffe://roundtrip.test/service/target', workload));
    const jwtBundle = SpiffeBundle.parse(td, await rig.bundle('spiffe')).jwtBundle();
    expect(jwtBundle).toBeInstanceOf(JwtBundle);
    const svid = await validateJwtSvid(
      token,
      new BundleSet(jwtBundle),
      'spiffe://roundtrip.test/service/target',
    );
    expect(svid.spiffeId.equals(SpiffeId.parse(workload))).toBe(true);
    expect(svid.audience).toEqual(['spiffe://roundtrip.test/service/target']);
    expect(parseJwtSvidInsecure(token).spiffeId.toString()).toBe(workload);
    await expect(
      validateJwtSvid(token, new BundleSet(jwtBundle), 'spiffe://roundtrip.test/service/other'),
    ).rejects.toThrow(/audience/);
  });
});
