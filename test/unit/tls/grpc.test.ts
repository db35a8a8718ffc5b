/**
 * grpc-js credentials over loopback: verification and authorization both ways, the peer ID in
 * handlers, rotation through the CertificateProvider path, and the pooled-roots impostor.
 */
import { once } from 'node:events';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createGrpcChannelCredentials,
  createGrpcServerCredentials,
  getGrpcPeerSpiffeId,
} from '../../../src/grpc/index.js';
import {
  type Authorizer,
  authorizeAny,
  authorizeId,
  type StaticX509Source,
  staticX509Source,
} from '../../../src/tls/index.js';
import { type CaMaterial, createCa, issueSvid, type SvidMaterial } from '../../fixtures/pki.js';
import { bundlesOf, pemOf, toSvid } from './helpers.js';

const identity = (b: Buffer) => b;
const service: grpc.ServiceDefinition = {
  whoAmI: {
    path: '/tachikoma.test.Echo/WhoAmI',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};
const EchoClient = grpc.makeGenericClientConstructor(service, 'Echo');

let root: CaMaterial;
let rootB: CaMaterial;
let server1: SvidMaterial;
let server2: SvidMaterial;
let clientSvid: SvidMaterial;

beforeAll(async () => {
  root = await createCa({ trustDomain: 'example.org' });
  rootB = await createCa({ trustDomain: 'other.org' });
  server1 = await issueSvid(root, 'spiffe://example.org/grpc-server');
  server2 = await issueSvid(root, 'spiffe://example.org/grpc-server');
  clientSvid = await issueSvid(root, 'spiffe://example.org/grpc-client');
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const handled: string[] = [];

async function startServer(authorizer: Authorizer): Promise<{ port: number; source: StaticX509Source }> {
  const source = staticX509Source(toSvid(server1), bundlesOf(root, rootB));
  const creds = createGrpcServerCredentials(source, authorizer);
  const server = new grpc.Server();
  server.addService(service, {
    whoAmI: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const id = String(getGrpcPeerSpiffeId(call));
      handled.push(id);
      cb(null, Buffer.from(id));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => {
    server.forceShutdown();
    creds.close();
  });
  return { port, source };
}

function call(port: number, svid: SvidMaterial, authorizer: Authorizer): Promise<string> {
  const creds = createGrpcChannelCredentials(
    staticX509Source(toSvid(svid), bundlesOf(root, rootB)),
    authorizer,
  );
  const client = new EchoClient(`localhost:${port}`, creds);
  cleanups.push(() => {
    client.close();
    creds.close();
  });
  return new Promise((resolve, reject) => {
    (
      client as unknown as {
        whoAmI: (
          req: Buffer,
          opts: grpc.CallOptions,
          cb: (e: grpc.ServiceError | null, r?: Buffer) => void,
        ) => void;
      }
    ).whoAmI(Buffer.from('x'), { deadline: Date.now() + 10_000 }, (err, res) =>
      err ? reject(err) : resolve(String(res)),
    );
  });
}

/** How a raw connection ended: 'data' if the server sent anything, else 'closed: <error>'. */
function outcomeOf(s: tls.TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    let error = '';
    s.on('error', (e) => {
      error = e.message;
    });
    s.on('data', () => {
      resolve('data');
      s.destroy();
    });
    s.on('close', () => resolve(`closed: ${error}`));
  });
}

async function servedSerial(port: number): Promise<string | undefined> {
  const s = tls.connect({
    host: '127.0.0.1',
    port,
    ALPNProtocols: ['h2'],
    cert: pemOf(clientSvid).chainPem,
    key: pemOf(clientSvid).keyPem,
    rejectUnauthorized: false,
  });
  await once(s, 'secureConnect');
  const serial = s.getPeerX509Certificate()?.serialNumber;
  s.destroy();
  return serial;
}

describe('gRPC over SPIFFE mTLS', () => {
  it('serves right after bind and the handler sees the verified client ID', async () => {
    const { port } = await startServer(authorizeId('spiffe://example.org/grpc-client'));
    expect(await call(port, clientSvid, authorizeId('spiffe://example.org/grpc-server'))).toBe(
      'spiffe://example.org/grpc-client',
    );
  });

  it('the server refuses a client its authorizer excludes (PERMISSION_DENIED), the handler never runs', async () => {
    const { port } = await startServer(authorizeId('spiffe://example.org/someone-else'));
    const before = handled.length;
    const err = await call(port, clientSvid, authorizeAny()).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err?.details).toBe(
      'tls-peer-unauthorized: spiffe://example.org/grpc-client is not spiffe://example.org/someone-else',
    );
    expect(handled.length).toBe(before);
  });

  it('the client refuses a server its authorizer excludes', async () => {
    const { port } = await startServer(authorizeAny());
    const before = handled.length;
    const err = await call(port, clientSvid, authorizeId('spiffe://example.org/billing')).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(err?.details).toContain(
      'tls-peer-unauthorized: spiffe://example.org/grpc-server is not spiffe://example.org/billing',
    );
    expect(handled.length).toBe(before);
  });

  it('refuses the pooled-roots impostor: an other.org CA vouching for an example.org ID', async () => {
    const { port } = await startServer(authorizeAny());
    const impostor = await issueSvid(rootB, 'spiffe://example.org/grpc-client');
    const err = await call(port, impostor, authorizeAny()).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err?.details).toContain('x509svid-untrusted-chain');
  });

  it('refuses a client without a certificate and TLS 1.2', async () => {
    const { port } = await startServer(authorizeAny());
    for (const extra of [
      {},
      { cert: pemOf(clientSvid).chainPem, key: pemOf(clientSvid).keyPem, maxVersion: 'TLSv1.2' as const },
    ]) {
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        ALPNProtocols: ['h2'],
        rejectUnauthorized: false,
        ...extra,
      });
      expect(await outcomeOf(s)).toMatch(/^closed: .*(certificate required|protocol version)/);
    }
  });

  it('rotates: new connections get the new SVID, calls keep working', async () => {
    const { port, source } = await startServer(authorizeAny());
    expect(await servedSerial(port)).toBe(server1.cert.serialNumber);
    source.update({ svid: toSvid(server2) });
    let serial: string | undefined;
    for (let i = 0; i < 50; i++) {
      serial = await servedSerial(port);
      if (serial === server2.cert.serialNumber) break;
      await new Promise((r) => setImmediate(r));
    }
    expect(serial).toBe(server2.cert.serialNumber);
    // the full option set survived the swap: still TLS 1.3 with client certificates
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      ALPNProtocols: ['h2'],
      rejectUnauthorized: false,
      maxVersion: 'TLSv1.2',
      cert: pemOf(clientSvid).chainPem,
      key: pemOf(clientSvid).keyPem,
    });
    expect(await outcomeOf(s)).toMatch(/^closed: .*protocol version/);
    expect(await call(port, clientSvid, authorizeAny())).toBe('spiffe://example.org/grpc-client');
  });
});
