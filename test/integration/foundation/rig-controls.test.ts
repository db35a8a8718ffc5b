// The rig's controls do what later tests rely on: CA and JWT-key rotation on demand, entry
// deletion, and stopping and restarting the agent and the server.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, spirePaths, useSpire, waitFor } from '../../rig/index.js';

function pemCerts(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (p) => new X509Certificate(p),
  );
}

describe('rig controls', () => {
  const spire = useSpire({ trustDomain: 'controls.test', name: 'rig-controls' });
  const id = 'spiffe://controls.test/service/controlled';

  it('rotates the X.509 CA: the new root joins the bundle and the SVID is re-issued under it', async () => {
    const rig = spire();
    await rig.createEntryAndWait({ spiffeId: id });
    const before = pemCerts(await rig.bundle());
    expect(before).toHaveLength(1);
    const ids = await rig.rotateX509Authority({ taint: true });
    expect(ids.newAuthorityId).not.toBe('');
    expect(ids.oldAuthorityId).not.toBe(ids.newAuthorityId);
    const after = pemCerts(await rig.bundle());
    expect(after).toHaveLength(2);
    const newRoot = after.find((c) => !c.raw.equals(before[0]!.raw))!;
    // Tainting the old authority makes the agent re-issue the SVID under the new one.
    await waitFor(
      'the SVID to be re-issued under the new CA',
      async () => {
        const dir = await rig.fetchX509ToDir();
        const leaf = pemCerts(readFileSync(join(dir, 'svid.0.pem'), 'utf8'))[0]!;
        return leaf.verify(newRoot.publicKey) ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, daemons: [rig.server, rig.agent] },
    );
  });

  it('rotates the JWT key: the new kid signs new tokens', async () => {
    const rig = spire();
    const kidOf = (out: string): string => {
      const token = out.split(/\s+/).find((w) => w.split('.').length === 3 && w.startsWith('eyJ'))!;
      return (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
    };
    const firstKid = kidOf(await rig.fetchJwtViaCli('aud-1', id));
    const { newAuthorityId } = await rig.rotateJwtAuthority();
    await waitFor(
      'a JWT-SVID signed by the new key',
      async () => (kidOf(await rig.fetchJwtViaCli(`aud-${Date.now()}`, id)) !== firstKid ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 500, daemons: [rig.server, rig.agent] },
    );
    const jwks = JSON.parse(await rig.bundle('spiffe')) as { keys: Array<{ use: string; kid?: string }> };
    expect(jwks.keys.filter((k) => k.use === 'jwt-svid').map((k) => k.kid)).toContain(newAuthorityId);
  });

  it('restarts the agent and the server, and the workload is served again', async () => {
    const rig = spire();
    const { spireAgent } = spirePaths();
    await rig.stopAgent();
    const down = await run(spireAgent, ['api', 'fetch', 'x509', '-socketPath', rig.workloadSocketPath], {
      timeoutMs: 5000,
    });
    expect(down.code).not.toBe(0);
    await rig.stopServer();
    await rig.startServer();
    await rig.startAgent();
    await rig.waitForX509Svid(id);
  });

  it('deletes an entry and the agent stops serving it', async () => {
    const rig = spire();
    const other = await rig.createEntryAndWait({ spiffeId: 'spiffe://controls.test/service/short-lived' });
    await rig.deleteEntry(other.id);
    const { spireAgent } = spirePaths();
    await waitFor(
      'the deleted entry to disappear from the Workload API',
      async () => {
        const r = await run(
          spireAgent,
          ['api', 'fetch', 'x509', '-socketPath', rig.workloadSocketPath, '-output', 'json'],
          {
            timeoutMs: 10_000,
          },
        );
        return r.code === 0 && !r.stdout.includes(other.spiffeId) ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
  });
});
