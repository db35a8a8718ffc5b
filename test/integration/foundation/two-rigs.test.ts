// Two SPIRE deployments at once (federation tests need two trust domains), each with its own
// ports, sockets and CA, and the federation helper joining them.
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SpireRig, startSpire, waitFor } from '../../rig/index.js';

function pemCerts(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (p) => new X509Certificate(p),
  );
}

describe('two SPIRE rigs side by side', () => {
  let a: SpireRig;
  let b: SpireRig;

  beforeAll(async () => {
    [a, b] = await Promise.all([
      startSpire({ trustDomain: 'td-a.test', bundleEndpoint: true, name: 'two-rigs-a' }),
      startSpire({ trustDomain: 'td-b.test', bundleEndpoint: true, name: 'two-rigs-b' }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('serves each workload an SVID of its own trust domain under its own CA', async () => {
    expect(a.workloadSocketPath).not.toBe(b.workloadSocketPath);
    await Promise.all([
      a.createEntryAndWait({ spiffeId: 'spiffe://td-a.test/service/alpha' }),
      b.createEntryAndWait({ spiffeId: 'spiffe://td-b.test/service/beta' }),
    ]);
    const [dirA, dirB] = await Promise.all([a.fetchX509ToDir(), b.fetchX509ToDir()]);
    const leafA = pemCerts(readFileSync(join(dirA, 'svid.0.pem'), 'utf8'))[0]!;
    const leafB = pemCerts(readFileSync(join(dirB, 'svid.0.pem'), 'utf8'))[0]!;
    expect(leafA.subjectAltName).toContain('URI:spiffe://td-a.test/service/alpha');
    expect(leafB.subjectAltName).toContain('URI:spiffe://td-b.test/service/beta');
    const rootA = pemCerts(await a.bundle())[0]!;
    const rootB = pemCerts(await b.bundle())[0]!;
    expect(leafA.verify(rootA.publicKey)).toBe(true);
    expect(leafA.verify(rootB.publicKey)).toBe(false);
    expect(leafB.verify(rootB.publicKey)).toBe(true);
  });

  it("federates A with B so that A workloads receive B's bundle", async () => {
    await a.federateWith(b);
    await b.federateWith(a);
    await a.createEntryAndWait({
      spiffeId: 'spiffe://td-a.test/service/federated',
      federatesWith: ['spiffe://td-b.test'],
    });
    const rootB = pemCerts(await b.bundle())[0]!;
    // The agent writes federated bundles as federated_bundle.<n>.<m>.pem once the server has
    // fetched B's bundle from its endpoint; force the fetch instead of waiting for the poll.
    const files = await waitFor(
      "td-b.test's bundle in td-a.test's Workload API",
      async () => {
        await a.serverCli(['federation', 'refresh', '-id', 'spiffe://td-b.test']);
        const dir = await a.fetchX509ToDir();
        const fed = readdirSync(dir).filter((f) => f.startsWith('federated_bundle'));
        const pems = fed.map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
        return pemCerts(pems).some((c) => c.raw.equals(rootB.raw)) ? fed : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000, daemons: [a.server, a.agent] },
    );
    expect(files.length).toBeGreaterThan(0);
  });
});
