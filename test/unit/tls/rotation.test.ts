/**
 * Live rotation with a static source whose update() stands in for the Workload API: servers
 * swap their context with the full option set, open connections keep working, new handshakes
 * and new client connections use the new SVID and bundles at once. Also server-side resumption.
 */
import { once } from 'node:events';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { X509Svid } from '../../../src/svid/index.js';
import {
  type Authorizer,
  authorizeAny,
  createMtlsTlsServer,
  getMtlsBinding,
  MtlsClient,
  staticX509Source,
} from '../../../src/tls/index.js';
import { type CaMaterial, createCa, issueSvid, type SvidMaterial } from '../../fixtures/pki.js';
import {
  bundlesOf,
  closeServer,
  exchange,
  listen,
  pemOf,
  portOf,
  rawClientOptions,
  rawServer,
  toSvid,
} from './helpers.js';

let root: CaMaterial;
let root2: CaMaterial;
let server1: SvidMaterial;
let server2: SvidMaterial;
let client1: SvidMaterial;
let clientNewCa: SvidMaterial;

beforeAll(async () => {
  root = await createCa({ trustDomain: 'example.org' });
  root2 = await createCa({ trustDomain: 'example.org' });
  server1 = await issueSvid(root, 'spiffe://example.org/server');
  server2 = await issueSvid(root, 'spiffe://example.org/server');
  client1 = await issueSvid(root, 'spiffe://example.org/client');
  clientNewCa = await issueSvid(root2, 'spiffe://example.org/client');
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** An echo server made by the helper, with a promise per rotation. */
async function echoServer(
  svid: SvidMaterial,
  bundleCas: CaMaterial[],
  authorizer: Authorizer = authorizeAny(),
  resumption = false,
) {
  const source = staticX509Source(toSvid(svid), bundlesOf(...bundleCas));
  const rotated: X509Svid[] = [];
  const sockets = new Set<tls.TLSSocket>();
  const server = createMtlsTlsServer(
    source,
    authorizer,
    (s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.on('data', (d: Buffer) => s.write(`pong:${d}`));
    },
    { onRotated: (x) => rotated.push(x), sessionResumption: resumption },
  );
  server.on('tlsClientError', () => {});
  await listen(server);
  cleanups.push(() => closeServer(server, sockets));
  const nextRotation = async (): Promise<void> => {
    const n = rotated.length;
    for (let i = 0; i < 100 && rotated.length === n; i++) await new Promise((r) => setImmediate(r));
    if (rotated.length === n) throw new Error('no rotation');
  };
  return { server, port: portOf(server), source, rotated, nextRotation };
}

/** Sends one line on an open socket and waits for the answer. */
async function roundTrip(socket: tls.TLSSocket, msg: string): Promise<string> {
  socket.write(msg);
  const [d] = (await once(socket, 'data')) as [Buffer];
  return d.toString();
}

function serialOf(socket: tls.TLSSocket): string | undefined {
  return socket.getPeerX509Certificate()?.serialNumber;
}

describe('server rotation', () => {
  it('new handshakes present the new SVID at once; open connections keep working', async () => {
    const s = await echoServer(server1, [root]);
    const open = tls.connect(rawClientOptions(s.port, pemOf(client1)));
    await once(open, 'secureConnect');
    expect(serialOf(open)).toBe(server1.cert.serialNumber);
    expect(await roundTrip(open, 'a')).toBe('pong:a');

    s.source.update({ svid: toSvid(server2) });
    await s.nextRotation();
    expect(getMtlsBinding(s.server)?.currentSvid().leaf.serialNumber).toBe(server2.cert.serialNumber);

    const fresh = tls.connect(rawClientOptions(s.port, pemOf(client1)));
    await once(fresh, 'secureConnect');
    expect(serialOf(fresh)).toBe(server2.cert.serialNumber);
    expect(await roundTrip(fresh, 'b')).toBe('pong:b');
    // the connection opened before the rotation still works
    expect(await roundTrip(open, 'c')).toBe('pong:c');
    open.destroy();
    fresh.destroy();
  });

  it('keeps the full option set across rotations (client cert required, TLS 1.3 minimum)', async () => {
    const s = await echoServer(server1, [root]);
    s.source.update({ svid: toSvid(server2) });
    await s.nextRotation();
    const noCert = await exchange(tls.connect(rawClientOptions(s.port, undefined)));
    expect(noCert.data).toBe('');
    const tls12 = await exchange(
      tls.connect(rawClientOptions(s.port, pemOf(client1), { maxVersion: 'TLSv1.2' })),
    );
    expect(tls12.data).toBe('');
    expect(tls12.secureConnected).toBe(false);
    const ok = await exchange(tls.connect(rawClientOptions(s.port, pemOf(client1))));
    expect(ok.data).toBe('pong:ping');
  });

  it('a bundle update trusts a new CA and drops a removed one from the next handshake', async () => {
    const s = await echoServer(server1, [root]);
    const before = await exchange(tls.connect(rawClientOptions(s.port, pemOf(clientNewCa))));
    expect(before.data).toBe('');
    s.source.update({ bundles: bundlesOf(root, root2) });
    await s.nextRotation();
    const after = await exchange(tls.connect(rawClientOptions(s.port, pemOf(clientNewCa))));
    expect(after.data).toBe('pong:ping');
    // the old CA leaves the bundle: its clients are refused
    s.source.update({ bundles: bundlesOf(root2) });
    await s.nextRotation();
    const old = await exchange(tls.connect(rawClientOptions(s.port, pemOf(client1))));
    expect(old.data).toBe('');
  });

  it('a failed rotation keeps the previous context and reports the error', async () => {
    const errors: string[] = [];
    const source = staticX509Source(toSvid(server1), bundlesOf(root));
    const server = createMtlsTlsServer(
      source,
      authorizeAny(),
      (sock) => sock.on('data', () => sock.write('pong')),
      {
        onError: (e) => errors.push(e.code),
      },
    );
    await listen(server);
    cleanups.push(() => closeServer(server));
    const broken = Object.create(toSvid(server2)) as X509Svid;
    Object.defineProperty(broken, 'marshal', {
      value: () => ({ certificatesPem: pemOf(server2).chainPem, privateKeyPem: pemOf(client1).keyPem }),
    });
    source.update({ svid: broken });
    for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setImmediate(r));
    expect(errors).toEqual(['tls-context-failed']);
    const sock = tls.connect(rawClientOptions(portOf(server), pemOf(client1)));
    const r = await exchange(sock);
    expect(r.data).toBe('pong');
  });
});

describe('client rotation', () => {
  it('the next connection presents the new SVID and trusts the new bundles', async () => {
    const seen: string[] = [];
    const srv = await rawServer(pemOf(server1), {
      requestCert: true,
      rejectUnauthorized: false,
    });
    srv.server.on('secureConnection', (s: tls.TLSSocket) =>
      seen.push(s.getPeerX509Certificate()?.serialNumber ?? 'none'),
    );
    cleanups.push(() => srv.close());
    const source = staticX509Source(toSvid(client1), bundlesOf(root));
    const client = new MtlsClient(source, authorizeAny());
    cleanups.push(() => client.close());
    expect((await exchange(client.connect({ host: '127.0.0.1', port: srv.port }))).data).toBe('pong');
    source.update({ svid: toSvid(clientNewCa) });
    expect((await exchange(client.connect({ host: '127.0.0.1', port: srv.port }))).data).toBe('pong');
    expect(seen).toEqual([client1.cert.serialNumber, clientNewCa.cert.serialNumber]);
    // the server's CA leaves the client's bundles: refused on the next connection
    source.update({ bundles: bundlesOf(root2) });
    const refused = await exchange(client.connect({ host: '127.0.0.1', port: srv.port }));
    expect(refused.data).toBe('');
    expect(refused.error).toMatchObject({ code: 'tls-peer-untrusted' });
  });

  it('gives up a handshake that does not finish in time', async () => {
    const net = await import('node:net');
    const conns = new Set<import('node:net').Socket>();
    const silent = net.createServer((c) => conns.add(c));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const c of conns) c.destroy();
          silent.close(() => r());
        }),
    );
    const client = new MtlsClient(staticX509Source(toSvid(client1), bundlesOf(root)), authorizeAny(), {
      handshakeTimeoutMs: 200,
    });
    cleanups.push(() => client.close());
    const r = await exchange(client.connect({ host: '127.0.0.1', port: portOf(silent) }));
    expect(r.error).toMatchObject({ code: 'tls-handshake-timeout' });
  });
});

describe('server-side session resumption', () => {
  async function tryResume(port: number): Promise<boolean[]> {
    let session: Buffer | undefined;
    const reused: boolean[] = [];
    for (let i = 0; i < 2; i++) {
      const c = tls.connect({ ...rawClientOptions(port, pemOf(client1)), ...(session ? { session } : {}) });
      c.on('session', (s: Buffer) => {
        session = s;
      });
      c.on('secureConnect', () => reused.push(c.isSessionReused()));
      const r = await exchange(c);
      if (r.data === '') reused.push(false);
    }
    return reused;
  }

  it('is off by default', async () => {
    const s = await echoServer(server1, [root]);
    expect(await tryResume(s.port)).toEqual([false, false]);
  });

  it('when on, a resumed connection is authorized again', async () => {
    let allow = true;
    const flip: Authorizer = {
      description: 'flip',
      authorize: () => (allow ? { allowed: true } : { allowed: false, reason: 'revoked' }),
    };
    const s = await echoServer(server1, [root], flip, true);
    expect(await tryResume(s.port)).toEqual([false, true]);
    // resumed handshake, but the authorizer now refuses: no answer
    let session: Buffer | undefined;
    const first = tls.connect(rawClientOptions(s.port, pemOf(client1)));
    first.on('session', (x: Buffer) => {
      session = x;
    });
    expect((await exchange(first)).data).toBe('pong:ping');
    allow = false;
    const resumed = tls.connect({ ...rawClientOptions(s.port, pemOf(client1)), session });
    let wasReused = false;
    resumed.on('secureConnect', () => {
      wasReused = resumed.isSessionReused();
    });
    const r = await exchange(resumed);
    expect(wasReused).toBe(true);
    expect(r.data).toBe('');
  });
});
