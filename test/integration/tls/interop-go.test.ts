/**
 * Interop with go-spiffe v2.9.0 (spiffetls/tlsconfig) on the same real SPIRE agent: a Go client
 * calls our https server and our client calls a Go server, each authorizing the other by SPIFFE
 * ID; a wrong ID is refused on both sides.
 */
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IdentityError } from '../../../src/errors/index.js';
import { createMtlsServer, getRequestSpiffeId, MtlsAgent } from '../../../src/http/index.js';
import { type Authorizer, authorizeId } from '../../../src/tls/index.js';
import { goClientGet, goServer, goTlsPeer } from '../../interop/tls/go-peer.js';
import { useSpire } from '../../rig/index.js';
import { type HintSource, workloadSource } from './workload-source.js';

const td = 'mtls-interop.test';
const NODE = `spiffe://${td}/node`;
const GO = `spiffe://${td}/go`;
const OTHER = `spiffe://${td}/someone-else`;

describe('go-spiffe interop', () => {
  const spire = useSpire({ trustDomain: td, name: 'tls-interop' });
  let source: HintSource;
  const closers: Array<() => Promise<void> | void> = [];

  beforeAll(async () => {
    const rig = spire();
    await Promise.all([goTlsPeer(), rig.createEntry({ spiffeId: GO, hint: 'go' })]);
    await rig.createEntryAndWait({ spiffeId: NODE, hint: 'node' });
    await rig.waitForX509Svid(GO);
    source = await workloadSource(rig.workloadAddress, 'node');
  });
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
    await source?.close();
  });

  async function ourServer(authorizer: Authorizer) {
    const handled: string[] = [];
    const rejected: IdentityError[] = [];
    const server = createMtlsServer(
      source.source,
      authorizer,
      (req, res) => {
        handled.push(String(getRequestSpiffeId(req)));
        res.end(`hello ${getRequestSpiffeId(req)}`);
      },
      { onPeerRejected: (e) => rejected.push(e) },
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
    return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/`, handled, rejected };
  }

  function ourGet(url: string, authorizer: Authorizer): Promise<string> {
    const agent = new MtlsAgent(source.source, authorizer);
    closers.push(() => agent.close());
    return new Promise((resolve, reject) => {
      https
        .get(url, { agent }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.on('end', () => resolve(`${res.statusCode} ${body}`));
        })
        .on('error', reject);
    });
  }

  it('a go-spiffe client calls our server; both authorize by SPIFFE ID', async () => {
    const s = await ourServer(authorizeId(GO));
    const r = await goClientGet(spire().workloadAddress, 'go', NODE, s.url);
    expect(r.stderr).toBe('');
    expect(r).toMatchObject({ code: 0, stdout: `hello ${GO}` });
    expect(s.handled).toEqual([GO]);
  });

  it('our server refuses a go-spiffe client with the wrong ID', async () => {
    const s = await ourServer(authorizeId(OTHER));
    const r = await goClientGet(spire().workloadAddress, 'go', NODE, s.url);
    expect(r.code).toBe(1);
    expect(s.handled).toEqual([]);
    expect(s.rejected.map((e) => e.message)).toEqual([`tls-peer-unauthorized: ${GO} is not ${OTHER}`]);
  });

  it('a go-spiffe client refuses our server when it expects another ID', async () => {
    const s = await ourServer(authorizeId(GO));
    const r = await goClientGet(spire().workloadAddress, 'go', OTHER, s.url);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`unexpected ID "${NODE}"`);
    expect(s.handled).toEqual([]);
  });

  it('our client calls a go-spiffe server; both authorize by SPIFFE ID', async () => {
    const g = await goServer(spire().workloadAddress, 'go', NODE);
    closers.push(() => g.stop());
    expect(await ourGet(`https://127.0.0.1:${g.port}/`, authorizeId(GO))).toBe(`200 hello ${NODE}`);
  });

  it('our client refuses a go-spiffe server with the wrong ID', async () => {
    const g = await goServer(spire().workloadAddress, 'go', NODE);
    closers.push(() => g.stop());
    await expect(ourGet(`https://127.0.0.1:${g.port}/`, authorizeId(OTHER))).rejects.toThrow(
      `tls-peer-unauthorized: ${GO} is not ${OTHER}`,
    );
  });

  it('a go-spiffe server refuses our client when it allows another ID', async () => {
    const g = await goServer(spire().workloadAddress, 'go', OTHER);
    closers.push(() => g.stop());
    const err = await ourGet(`https://127.0.0.1:${g.port}/`, authorizeId(GO)).then(
      (ok) => new Error(`unexpectedly answered: ${ok}`),
      (e: Error) => e,
    );
    expect(err.message).not.toMatch(/unexpectedly answered/);
    // go-spiffe names the refusal in its handshake error
    for (let i = 0; i < 50 && !g.lines.some((l) => l.startsWith('REFUSED')); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(g.lines.find((l) => l.startsWith('REFUSED'))).toContain(`unexpected ID "${NODE}"`);
  });
});
