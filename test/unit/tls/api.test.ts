/**
 * The helper APIs' own contracts: argument checks, attach/close, the plain option builders.
 */
import { once } from 'node:events';
import tls from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BundleSet } from '../../../src/bundle/index.js';
import {
  attachMtls,
  authorizeAny,
  authorizeId,
  connectMtls,
  createMtlsTlsServer,
  getMtlsBinding,
  getPeerSpiffeId,
  MtlsClient,
  staticX509Source,
  tlsClientOptions,
  tlsServerOptions,
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
let bundles: BundleSet;
let serverSvid: SvidMaterial;
let clientSvid: SvidMaterial;

beforeAll(async () => {
  root = await createCa({ trustDomain: 'example.org' });
  bundles = bundlesOf(root);
  serverSvid = await issueSvid(root, 'spiffe://example.org/server');
  clientSvid = await issueSvid(root, 'spiffe://example.org/client');
});

describe('argument checks', () => {
  it('refuses bad sources, authorizers and options with tls-invalid-argument', () => {
    const source = staticX509Source(toSvid(serverSvid), bundles);
    const bad = expect.objectContaining({ code: 'tls-invalid-argument' });
    expect(() => new MtlsClient({} as never, authorizeAny())).toThrow(bad);
    expect(() => new MtlsClient(source, {} as never)).toThrow(bad);
    expect(() => new MtlsClient(source, authorizeAny(), { minTlsVersion: 'TLSv1.1' as never })).toThrow(bad);
    expect(() => new MtlsClient(source, authorizeAny(), { handshakeTimeoutMs: -1 })).toThrow(bad);
    expect(() => createMtlsTlsServer(source, null as never)).toThrow(bad);
    expect(() => attachMtls({} as never, source, authorizeAny())).toThrow(bad);
    expect(() => staticX509Source('pem' as never, bundles)).toThrow(bad);
    expect(() => staticX509Source(toSvid(serverSvid), [] as never)).not.toThrow();
    expect(() => staticX509Source(toSvid(serverSvid), 'x' as never)).toThrow(bad);
  });

  it('a source without an SVID is tls-no-svid', () => {
    const empty = {
      getX509Svid: () => {
        throw new Error('not yet');
      },
      getX509BundleSet: () => bundles,
    };
    const c = new MtlsClient(empty, authorizeAny());
    expect(() => c.connect({ host: '127.0.0.1', port: 1 })).toThrow(
      expect.objectContaining({ code: 'tls-no-svid' }),
    );
    c.close();
    expect(() => c.connect({ host: '127.0.0.1', port: 1 })).toThrow(
      expect.objectContaining({ code: 'tls-closed' }),
    );
  });
});

describe('attachMtls', () => {
  it('refuses a second binding and restores the server on close', async () => {
    const source = staticX509Source(toSvid(serverSvid), bundles);
    const server = tls.createServer(tlsServerOptions(source), (s) => s.end('hi'));
    server.on('tlsClientError', () => {});
    const conns = new Set<import('node:net').Socket>();
    server.on('connection', (c: import('node:net').Socket) => conns.add(c));
    const binding = attachMtls(server, source, authorizeId('spiffe://example.org/client'));
    expect(getMtlsBinding(server)).toBe(binding);
    expect(() => attachMtls(server, source, authorizeAny())).toThrow(
      expect.objectContaining({ code: 'tls-already-attached' }),
    );
    await listen(server);
    // bound: a client the authorizer does not know is refused
    const other = await issueSvid(root, 'spiffe://example.org/other');
    expect((await exchange(tls.connect(rawClientOptions(portOf(server), pemOf(other))))).data).toBe('');
    binding.close();
    binding.close();
    expect(getMtlsBinding(server)).toBeUndefined();
    expect(Object.hasOwn(server, 'emit')).toBe(false);
    // unbound: OpenSSL's check of tlsServerOptions remains (a valid chain gets through, no cert does not)
    expect((await exchange(tls.connect(rawClientOptions(portOf(server), pemOf(other))))).data).toBe('hi');
    expect((await exchange(tls.connect(rawClientOptions(portOf(server), undefined)))).data).toBe('');
    for (const c of conns) c.destroy();
    await closeServer(server);
  });
});

describe('plain option builders and connectMtls', () => {
  it('tlsServerOptions require client certificates and TLS 1.3', () => {
    const o = tlsServerOptions(staticX509Source(toSvid(serverSvid), bundles));
    expect(o).toMatchObject({ requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
  });

  it('tlsClientOptions verify and authorize the server in checkServerIdentity', async () => {
    const srv = await rawServer(pemOf(serverSvid));
    try {
      const source = staticX509Source(toSvid(clientSvid), bundles);
      const good = tls.connect({
        host: '127.0.0.1',
        port: srv.port,
        ...tlsClientOptions(source, authorizeAny()),
      });
      expect((await exchange(good)).data).toBe('pong');
      const wrong = tls.connect({
        host: '127.0.0.1',
        port: srv.port,
        ...tlsClientOptions(source, authorizeId('spiffe://example.org/db')),
      });
      const r = await exchange(wrong);
      expect(r.data).toBe('');
      expect(r.error?.message).toBe(
        'tls-peer-unauthorized: spiffe://example.org/server is not spiffe://example.org/db',
      );
    } finally {
      await srv.close();
    }
  });

  it('connectMtls records the server ID on the socket', async () => {
    const srv = await rawServer(pemOf(serverSvid));
    try {
      const socket = connectMtls(staticX509Source(toSvid(clientSvid), bundles), authorizeAny(), {
        host: '127.0.0.1',
        port: srv.port,
      });
      await once(socket, 'secureConnect');
      expect(getPeerSpiffeId(socket)?.toString()).toBe('spiffe://example.org/server');
      socket.destroy();
    } finally {
      await srv.close();
    }
  });
});

describe("OpenSSL's verdict as a second opinion", () => {
  it('a chain our check accepts but OpenSSL refuses is refused (tls-peer-chain-invalid)', async () => {
    // A source without change events: the server's OpenSSL context keeps the roots it started
    // with, while our check always reads the source's current bundles.
    const root2 = await createCa({ trustDomain: 'example.org' });
    const newClient = await issueSvid(root2, 'spiffe://example.org/client');
    let current = bundlesOf(root);
    const svid = toSvid(serverSvid);
    const silentSource = { getX509Svid: () => svid, getX509BundleSet: () => current };
    const rejected: string[] = [];
    const server = createMtlsTlsServer(silentSource, authorizeAny(), (s) => s.end('hi'), {
      onPeerRejected: (e) => rejected.push(e.code),
    });
    server.on('tlsClientError', () => {});
    await listen(server);
    current = bundlesOf(root, root2);
    const r = await exchange(tls.connect(rawClientOptions(portOf(server), pemOf(newClient))));
    expect(r.data).toBe('');
    expect(rejected).toEqual(['tls-peer-chain-invalid']);
    await closeServer(server);
  });
});
