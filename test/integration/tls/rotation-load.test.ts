/**
 * Rotation under load with real SPIRE: continuous https requests over fresh connections while
 * the agent rotates both workloads' SVIDs at least five times (entry TTL 30 s: about every
 * 10 s) and the server's X.509 CA is rotated once. Zero requests may fail, the certificate the
 * server presents must change with each rotation, and the new CA must end up in use.
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { createMtlsServer, MtlsAgent } from '../../../src/http/index.js';
import { authorizeId } from '../../../src/tls/index.js';
import { useSpire } from '../../rig/index.js';
import { type HintSource, workloadSource } from './workload-source.js';

const td = 'mtls-rotation.test';
const SERVER = `spiffe://${td}/api`;
const CLIENT = `spiffe://${td}/frontend`;
const MIN_ROTATIONS = 5;

describe('rotation under load', () => {
  const spire = useSpire({ trustDomain: td, name: 'tls-rotation' });
  const closers: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('zero failed requests across ≥5 SVID rotations and a CA rotation; the served serial changes', async () => {
    const rig = spire();
    const originalRoots = (await rig.bundle('pem'))
      .split(/(?=-----BEGIN CERTIFICATE-----)/)
      .filter((p) => p.includes('BEGIN CERTIFICATE'))
      .map((p) => new X509Certificate(p));
    await rig.createEntry({ spiffeId: SERVER, hint: 'api', x509SvidTtl: 30 });
    await rig.createEntryAndWait({ spiffeId: CLIENT, hint: 'frontend', x509SvidTtl: 30 });
    await rig.waitForX509Svid(SERVER);
    const [serverSource, clientSource]: HintSource[] = await Promise.all([
      workloadSource(rig.workloadAddress, 'api'),
      workloadSource(rig.workloadAddress, 'frontend'),
    ]);
    closers.push(
      () => serverSource!.close(),
      () => clientSource!.close(),
    );

    let serverRotations = 0;
    const clientSerialsSeenByServer = new Set<string>();
    const server = createMtlsServer(
      serverSource!.source,
      authorizeId(CLIENT),
      (req, res) => {
        const serial = (req.socket as TLSSocket).getPeerX509Certificate()?.serialNumber;
        if (serial) clientSerialsSeenByServer.add(serial);
        res.end('ok');
      },
      { onRotated: () => serverRotations++ },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    closers.push(
      () =>
        new Promise<void>((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
    );
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    // a fresh connection (full handshake) for every request
    const agent = new MtlsAgent(clientSource!.source, authorizeId(SERVER), { keepAlive: false });
    closers.push(() => agent.close());

    const servedSerials: string[] = [];
    let lastServedLeaf: X509Certificate | undefined;
    const failures: string[] = [];
    let ok = 0;
    const request = () =>
      new Promise<void>((resolve) => {
        const req = https.get(url, { agent }, (res) => {
          const leaf = (res.socket as TLSSocket).getPeerX509Certificate();
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200 && leaf) {
              ok++;
              lastServedLeaf = leaf;
              if (servedSerials.at(-1) !== leaf.serialNumber) servedSerials.push(leaf.serialNumber);
            } else failures.push(`status ${res.statusCode}`);
            resolve();
          });
        });
        req.on('error', (e) => {
          failures.push(e.message);
          resolve();
        });
      });

    const signedByNewCa = () =>
      lastServedLeaf !== undefined && originalRoots.every((root) => !lastServedLeaf!.verify(root.publicKey));
    let caRotated = false;
    const started = Date.now();
    const deadline = started + 100_000;
    const done = () =>
      serverSource!.serials.length > MIN_ROTATIONS &&
      clientSource!.serials.length > MIN_ROTATIONS &&
      servedSerials.length > MIN_ROTATIONS &&
      clientSerialsSeenByServer.size > MIN_ROTATIONS &&
      caRotated &&
      signedByNewCa();
    const worker = async () => {
      while (!done() && Date.now() < deadline) await request();
    };
    const caRotation = (async () => {
      // once the SVIDs have rotated twice, rotate the CA: prepared (joins the bundle) and activated
      while (serverSource!.serials.length < 3 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 250));
      await rig.rotateX509Authority();
      caRotated = true;
    })();
    await Promise.all([worker(), worker(), caRotation]);

    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    expect(serverSource!.serials.length).toBeGreaterThan(MIN_ROTATIONS);
    expect(clientSource!.serials.length).toBeGreaterThan(MIN_ROTATIONS);
    // every SVID the agent rotated to was presented to clients, in order
    expect(servedSerials.length).toBeGreaterThan(MIN_ROTATIONS);
    expect(new Set(servedSerials).size).toBe(servedSerials.length);
    expect(servedSerials.every((s) => serverSource!.serials.includes(s))).toBe(true);
    expect(serverRotations).toBeGreaterThanOrEqual(MIN_ROTATIONS);
    // the client's rotations reached the server too
    expect(clientSerialsSeenByServer.size).toBeGreaterThan(MIN_ROTATIONS);
    expect(caRotated).toBe(true);
    expect(signedByNewCa()).toBe(true);
  }, 140_000);
});
