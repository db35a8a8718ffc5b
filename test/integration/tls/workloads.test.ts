/**
 * Two workloads with SVIDs from a real spire-agent (two entries for this uid, told apart by
 * hint) talk https (https.Agent and undici fetch) and gRPC over SPIFFE mTLS; authorizers that
 * exclude the caller or the server refuse.
 */
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { Agent as UndiciAgent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createGrpcChannelCredentials,
  createGrpcServerCredentials,
  getGrpcPeerSpiffeId,
} from '../../../src/grpc/index.js';
import { createMtlsServer, getRequestSpiffeId, MtlsAgent, undiciConnector } from '../../../src/http/index.js';
import { authorizeId, authorizeMemberOf, authorizeOneOf } from '../../../src/tls/index.js';
import { useSpire } from '../../rig/index.js';
import { type HintSource, workloadSource } from './workload-source.js';

const td = 'mtls-pair.test';
const SERVER = `spiffe://${td}/api`;
const CLIENT = `spiffe://${td}/frontend`;

describe('two SPIRE workloads over SPIFFE mTLS', () => {
  const spire = useSpire({ trustDomain: td, name: 'tls-workloads' });
  let serverSource: HintSource;
  let clientSource: HintSource;
  let server: https.Server;
  let base: string;
  const seen: string[] = [];

  beforeAll(async () => {
    const rig = spire();
    await rig.createEntry({ spiffeId: SERVER, hint: 'api' });
    await rig.createEntryAndWait({ spiffeId: CLIENT, hint: 'frontend' });
    await rig.waitForX509Svid(SERVER);
    [serverSource, clientSource] = await Promise.all([
      workloadSource(rig.workloadAddress, 'api'),
      workloadSource(rig.workloadAddress, 'frontend'),
    ]);
    server = createMtlsServer(serverSource.source, authorizeOneOf(CLIENT), (req, res) => {
      seen.push(String(getRequestSpiffeId(req)));
      res.end(`hello ${getRequestSpiffeId(req)}`);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await serverSource?.close();
    await clientSource?.close();
  });

  function get(agent: https.Agent): Promise<{ body: string; peer: string | undefined }> {
    return new Promise((resolve, reject) => {
      https
        .get(`${base}/`, { agent }, (res) => {
          const peer = getRequestSpiffeId(res)?.toString();
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.on('end', () => resolve({ body, peer }));
        })
        .on('error', reject);
    });
  }

  it('https with MtlsAgent: each side sees the other’s SPIRE-issued ID', async () => {
    expect(clientSource.source.getX509Svid().spiffeId.toString()).toBe(CLIENT);
    const agent = new MtlsAgent(clientSource.source, authorizeId(SERVER));
    try {
      expect(await get(agent)).toEqual({ body: `hello ${CLIENT}`, peer: SERVER });
    } finally {
      agent.close();
    }
  });

  it('undici fetch with the connector', async () => {
    const connect = undiciConnector(clientSource.source, authorizeMemberOf(td));
    const dispatcher = new UndiciAgent({ connect });
    try {
      const res = await undiciFetch(base, { dispatcher });
      expect(await res.text()).toBe(`hello ${CLIENT}`);
    } finally {
      await dispatcher.close();
      connect.close();
    }
  });

  it('an authorizer that excludes the caller refuses it before the handler runs', async () => {
    // the API workload calling itself: a valid SVID of the trust domain, but not an allowed caller
    const before = seen.length;
    const agent = new MtlsAgent(serverSource.source, authorizeId(SERVER));
    try {
      const err = await get(agent).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect(seen.length).toBe(before);
    } finally {
      agent.close();
    }
  });

  it('a client authorizer that excludes the server refuses it', async () => {
    const agent = new MtlsAgent(clientSource.source, authorizeId(`spiffe://${td}/billing`));
    try {
      await expect(get(agent)).rejects.toThrow(
        `tls-peer-unauthorized: ${SERVER} is not spiffe://${td}/billing`,
      );
    } finally {
      agent.close();
    }
  });

  it('gRPC: the handler sees the caller; an excluding server authorizer refuses', async () => {
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
    const start = async (allowed: string) => {
      const creds = createGrpcServerCredentials(serverSource.source, authorizeId(allowed));
      const s = new grpc.Server();
      s.addService(service, {
        whoAmI: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
          cb(null, Buffer.from(String(getGrpcPeerSpiffeId(call)))),
      });
      const port = await new Promise<number>((res, rej) =>
        s.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? rej(e) : res(p))),
      );
      return {
        port,
        stop: () => {
          s.forceShutdown();
          creds.close();
        },
      };
    };
    const Client = grpc.makeGenericClientConstructor(service, 'Echo');
    const callOnce = (port: number) => {
      const creds = createGrpcChannelCredentials(clientSource.source, authorizeId(SERVER));
      const c = new Client(`localhost:${port}`, creds) as unknown as grpc.Client & {
        whoAmI(r: Buffer, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: Buffer) => void): void;
      };
      return new Promise<string>((resolve, reject) =>
        c.whoAmI(Buffer.from('x'), { deadline: Date.now() + 15_000 }, (e, v) => {
          c.close();
          creds.close();
          if (e) reject(e);
          else resolve(String(v));
        }),
      );
    };
    const ok = await start(CLIENT);
    try {
      expect(await callOnce(ok.port)).toBe(CLIENT);
    } finally {
      ok.stop();
    }
    const strict = await start(`spiffe://${td}/someone-else`);
    try {
      await expect(callOnce(strict.port)).rejects.toMatchObject({
        code: grpc.status.PERMISSION_DENIED,
        details: `tls-peer-unauthorized: ${CLIENT} is not spiffe://${td}/someone-else`,
      });
    } finally {
      strict.stop();
    }
  });
});
