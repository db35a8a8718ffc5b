/**
 * The Express 5 and Fastify 5 glue on real framework instances: the verified caller ID on the
 * request, refusal of unverified connections, rotation through attachMtls for Fastify.
 */
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createMtlsServer,
  fastifySpiffeId,
  getRequestSpiffeId,
  MtlsAgent,
  spiffeIdMiddleware,
} from '../../../src/http/index.js';
import {
  attachMtls,
  authorizeId,
  authorizeMemberOf,
  staticX509Source,
  tlsServerOptions,
} from '../../../src/tls/index.js';
import { type CaMaterial, createCa, issueSvid, type SvidMaterial } from '../../fixtures/pki.js';
import { bundlesOf, pemOf, toSvid } from './helpers.js';

let root: CaMaterial;
let serverSvid: SvidMaterial;
let serverSvid2: SvidMaterial;
let clientSvid: SvidMaterial;

beforeAll(async () => {
  root = await createCa({ trustDomain: 'example.org' });
  serverSvid = await issueSvid(root, 'spiffe://example.org/api');
  serverSvid2 = await issueSvid(root, 'spiffe://example.org/api');
  clientSvid = await issueSvid(root, 'spiffe://example.org/frontend');
});

function get(
  url: string,
  agent: https.Agent,
): Promise<{ status: number; body: string; serial: string | undefined }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { agent }, (res) => {
        const serial = (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate()?.serialNumber;
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serial }));
      })
      .on('error', reject);
  });
}

const clientAgent = () =>
  new MtlsAgent(
    staticX509Source(toSvid(clientSvid), bundlesOf(root)),
    authorizeId('spiffe://example.org/api'),
    {
      keepAlive: false,
    },
  );

describe('Express 5', () => {
  it('req.spiffeId is the verified caller', async () => {
    const app = express();
    app.use(spiffeIdMiddleware());
    app.get('/', (req, res) => {
      res.send(`hello ${req.spiffeId} / ${getRequestSpiffeId(req)}`);
    });
    const server = createMtlsServer(
      staticX509Source(toSvid(serverSvid), bundlesOf(root)),
      authorizeMemberOf('example.org'),
      app,
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const agent = clientAgent();
    try {
      const r = await get(`https://127.0.0.1:${(server.address() as AddressInfo).port}/`, agent);
      expect(r).toMatchObject({
        status: 200,
        body: 'hello spiffe://example.org/frontend / spiffe://example.org/frontend',
      });
    } finally {
      agent.close();
      server.close();
    }
  });

  it('an app on a server the SDK did not set up answers 401', async () => {
    const app = express();
    app.use(spiffeIdMiddleware());
    app.get('/', (_req, res) => {
      res.send('should not happen');
    });
    app.use(
      (
        err: { status?: number; code?: string },
        _req: express.Request,
        res: express.Response,
        _next: express.NextFunction,
      ) => {
        res.status(err.status ?? 500).send(err.code);
      },
    );
    const { chainPem, keyPem } = pemOf(serverSvid);
    const server = https.createServer({ cert: chainPem, key: keyPem }, app);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const agent = new https.Agent({ rejectUnauthorized: false, keepAlive: false });
    try {
      const r = await get(`https://127.0.0.1:${(server.address() as AddressInfo).port}/`, agent);
      expect(r).toMatchObject({ status: 401, body: 'tls-peer-unverified' });
    } finally {
      server.close();
    }
  });
});

describe('Fastify 5', () => {
  it('request.spiffeId is the verified caller; attachMtls rotates fastify.server', async () => {
    const source = staticX509Source(toSvid(serverSvid), bundlesOf(root));
    const app = Fastify({ https: tlsServerOptions(source) });
    const rotated: string[] = [];
    attachMtls(app.server as unknown as import('node:tls').Server, source, authorizeMemberOf('example.org'), {
      onRotated: (s) => rotated.push(s.leaf.serialNumber),
    });
    await app.register(fastifySpiffeId);
    app.get('/', async (req) => `hello ${(req as unknown as { spiffeId: unknown }).spiffeId}`);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}/`;
    const agent = clientAgent();
    try {
      const first = await get(url, agent);
      expect(first).toMatchObject({
        status: 200,
        body: 'hello spiffe://example.org/frontend',
        serial: serverSvid.cert.serialNumber,
      });
      source.update({ svid: toSvid(serverSvid2) });
      for (let i = 0; i < 100 && rotated.length === 0; i++) await new Promise((r) => setImmediate(r));
      const second = await get(url, agent);
      expect(second).toMatchObject({ status: 200, serial: serverSvid2.cert.serialNumber });
    } finally {
      agent.close();
      await app.close();
    }
  });

  it('refuses a request whose connection carries no verified ID', async () => {
    const { chainPem, keyPem } = pemOf(serverSvid);
    const app = Fastify({ https: { cert: chainPem, key: keyPem } });
    await app.register(fastifySpiffeId);
    app.get('/', async () => 'should not happen');
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const r = await get(
        `https://127.0.0.1:${(app.server.address() as AddressInfo).port}/`,
        new https.Agent({ rejectUnauthorized: false, keepAlive: false }),
      );
      expect(r.status).toBe(401);
      expect(r.body).toContain('tls-peer-unverified');
    } finally {
      await app.close();
    }
  });
});
