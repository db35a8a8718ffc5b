// Clients nobody here wrote accept the dev Workload API server: SPIRE's own CLI
// (`spire-agent api fetch/validate`) and a go-spiffe v2.9.0 program (test/interop/go-spiffe).
// Also: per-uid sockets keep other uids out, checked with real processes of other uids.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Bundle } from '../../../src/bundle/index.js';
import { DevWorkloadServer } from '../../../src/dev/index.js';
import { validateJwtSvid, X509Svid } from '../../../src/svid/index.js';
import { goSpiffeClient, goSpiffeFetchX509 } from '../../interop/go-spiffe.js';
import { run, runOk, spirePaths } from '../../rig/index.js';
import { runWorkloadChild } from './helpers/child.js';

const WEB = 'spiffe://dev-interop.test/web';
const DB = 'spiffe://dev-interop.test/db';

describe('the dev Workload API server with clients nobody here wrote', () => {
  let server: DevWorkloadServer;
  let partner: DevWorkloadServer;
  let agentCli: string;

  beforeAll(async () => {
    agentCli = spirePaths().spireAgent;
    partner = await DevWorkloadServer.start({ trustDomain: 'partner.test', x509Rotation: false });
    server = await DevWorkloadServer.start({
      trustDomain: 'dev-interop.test',
      identities: [
        WEB,
        { spiffeId: DB, hint: 'database' },
        { spiffeId: 'spiffe://dev-interop.test/u', uid: 23456 },
      ],
      federatedBundles: { 'partner.test': { x509: partner.x509Bundle(), jwt: partner.jwtBundle() } },
      x509Rotation: false,
    });
    await goSpiffeClient(); // build (or find) the go-spiffe program before the timed tests
  }, 600_000);
  afterAll(async () => {
    await server?.close();
    await partner?.close();
  });

  it('spire-agent api fetch x509 gets the SVIDs, keys and bundles', async () => {
    const dir = join(server.socketPath, '..', 'cli-out');
    mkdirSync(dir);
    const out = await runOk(
      agentCli,
      ['api', 'fetch', 'x509', '-socketPath', server.socketPath, '-write', dir],
      {
        timeoutMs: 20_000,
      },
    );
    expect(out).toContain(`SPIFFE ID:\t\t${WEB}`);
    expect(out).toContain(`SPIFFE ID:\t\t${DB}`);
    // What the CLI wrote parses as the same SVID the server issued, with its key.
    const svid = X509Svid.parse(
      readFileSync(join(dir, 'svid.0.pem'), 'utf8'),
      readFileSync(join(dir, 'svid.0.key'), 'utf8'),
    );
    expect(svid.spiffeId.toString()).toBe(WEB);
    expect(svid.leaf.serialNumber.toLowerCase()).toBe(server.serialOf(WEB));
    const bundle = X509Bundle.parse('dev-interop.test', readFileSync(join(dir, 'bundle.0.pem'), 'utf8'));
    expect(bundle.equals(server.x509Bundle())).toBe(true);
    const federated = X509Bundle.parse(
      'partner.test',
      readFileSync(join(dir, 'federated_bundle.0.0.pem'), 'utf8'),
    );
    expect(federated.equals(partner.x509Bundle())).toBe(true);
  });

  it('spire-agent api fetch jwt and validate jwt work, including the Struct claims', async () => {
    const out = await runOk(
      agentCli,
      ['api', 'fetch', 'jwt', '-audience', 'spiffe://dev-interop.test/api', '-socketPath', server.socketPath],
      {
        timeoutMs: 20_000,
      },
    );
    const token =
      out.match(/token\(([^)]*)\):\s*\n\s*(\S+)/)?.[2] ?? out.match(/(eyJ[\w-]+\.[\w-]+\.[\w-]+)/)?.[1];
    expect(token, out).toBeDefined();
    const svid = await validateJwtSvid(token!, server.bundleSet(), 'spiffe://dev-interop.test/api');
    expect(svid.spiffeId.toString()).toBe(WEB);
    const valid = await runOk(
      agentCli,
      [
        'api',
        'validate',
        'jwt',
        '-audience',
        'spiffe://dev-interop.test/api',
        '-svid',
        token!,
        '-socketPath',
        server.socketPath,
      ],
      { timeoutMs: 20_000 },
    );
    expect(valid).toContain('SVID is valid');
    expect(valid).toContain(WEB);
    const invalid = await run(
      agentCli,
      [
        'api',
        'validate',
        'jwt',
        '-audience',
        'someone-else',
        '-svid',
        token!,
        '-socketPath',
        server.socketPath,
      ],
      { timeoutMs: 20_000 },
    );
    expect(invalid.code).not.toBe(0);
    expect(invalid.stderr + invalid.stdout).toMatch(/InvalidArgument|audience/);
  });

  it('go-spiffe v2.9.0 FetchX509Context parses and checks every SVID', async () => {
    const got = await goSpiffeFetchX509(server.address);
    expect(got.svids.map((s) => [s.spiffeId, s.hint])).toEqual([
      [WEB, ''],
      [DB, 'database'],
    ]);
    for (const s of got.svids) {
      expect(s.serial).toBe(
        server.serialOf(s.spiffeId, s.hint === '' ? undefined : s.hint).replace(/^0+/, ''),
      );
      expect(s.hasKey).toBe(true);
      expect(s.chainLength).toBe(1);
    }
    expect(got.trustDomains).toEqual(['dev-interop.test', 'partner.test']);
  });

  it('go-spiffe sees a rotation as a new serial', async () => {
    const [serial] = server.rotateX509Svids(WEB);
    const got = await goSpiffeFetchX509(server.address);
    expect(got.svids[0]!.serial).toBe(serial!.replace(/^0+/, ''));
  });

  it('a process of the bound uid gets its identity on its socket; another uid is refused by the kernel', async () => {
    const address = server.addressFor(23456);
    await runWorkloadChild('fetch', server.address, { timeoutMs: 60_000 }); // warms the transpile cache as root
    const own = await runWorkloadChild('fetch', address, { uid: 23456, timeoutMs: 60_000 });
    expect(own.lines[0]).toMatchObject({ uid: 23456, ok: true, spiffeIds: ['spiffe://dev-interop.test/u'] });
    const other = await runWorkloadChild('fetch', address, { uid: 23457, timeoutMs: 60_000 });
    expect(other.lines[0]).toMatchObject({ uid: 23457, ok: false, code: 'workload-unavailable' });
    expect(String(other.lines[0]?.['message'])).toContain('EACCES');
    // On the main socket, that uid gets only the identities bound to no uid.
    const main = await runWorkloadChild('fetch', server.address, { uid: 23457, timeoutMs: 60_000 });
    expect(main.lines[0]).toMatchObject({ ok: true, spiffeIds: [WEB, DB] });
  });
});
