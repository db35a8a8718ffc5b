/**
 * The https/undici adapters over loopback: createMtlsServer, MtlsAgent, undiciConnector, the
 * Express-style middleware. Certificates come from the fixture factory.
 */
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Agent as UndiciAgent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BundleSet } from '../../../src/bundle/index.js';
import { IdentityError } from '../../../src/errors/index.js';
import {
  createMtlsServer,
  getRequestSpiffeId,
  MtlsAgent,
  spiffeIdMiddleware,
  undiciConnector,
} from '../../../src/http/index.js';
import {
  authorizeId,
  authorizeMemberOf,
  staticX509Source,
  tlsClientOptions,
} from '../../../src/tls/index.js';
import { type CaMaterial, createCa, issueSvid, type SvidMaterial } from '../../fixtures/pki.js';
import { bundlesOf, toSvid } from './helpers.js';

let root: CaMaterial;
let bundles: BundleSet;
let serverSvid: SvidMaterial;
let clientSvid: SvidMaterial;
let server: https.Server;
let base: string;
const handled: string[] = [];

beforeAll(async () => {
  root = await createCa({ trustDomain: 'example.org' });
  bundles = bundlesOf(root);
  serverSvid = await issueSvid(root, 'spiffe://example.org/api');
  clientSvid = await issueSvid(root, 'spiffe://example.org/frontend');
  const middleware = spiffeIdMiddleware();
  server = createMtlsServer(
    staticX509Source(toSvid(serverSvid), bundles),
    authorizeMemberOf('example.org'),
    (req, res) => {
      middleware(req as typeof req & { spiffeId?: never }, res, (err?: unknown) => {
        if (err) {
          res.statusCode = 401;
          res.end(String(err));
          return;
        }
        handled.push(String(getRequestSpiffeId(req)));
        res.end(`hello ${(req as { spiffeId?: unknown }).spiffeId}`);
      });
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

function get(url: string, agent: https.Agent, extra: https.RequestOptions = {}) {
  return new Promise<{ status: number; body: string; peer: string | undefined; socket: unknown }>(
    (resolve, reject) => {
      const req = https.get(url, { agent, ...extra }, (res) => {
        const peer = getRequestSpiffeId(res)?.toString();
        const socket = res.socket;
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peer, socket }));
      });
      req.on('error', reject);
    },
  );
}

describe('createMtlsServer + MtlsAgent', () => {
  it('both sides see each other’s verified SPIFFE ID; keep-alive reuses the verified socket', async () => {
    const agent = new MtlsAgent(
      staticX509Source(toSvid(clientSvid), bundles),
      authorizeId('spiffe://example.org/api'),
    );
    try {
      const a = await get(`${base}/x`, agent);
      expect(a).toMatchObject({
        status: 200,
        body: 'hello spiffe://example.org/frontend',
        peer: 'spiffe://example.org/api',
      });
      const b = await get(`${base}/y`, agent);
      expect(b.body).toBe('hello spiffe://example.org/frontend');
      expect(b.socket).toBe(a.socket);
    } finally {
      agent.close();
    }
  });

  it('refuses a server the authorizer excludes; the request never reaches the handler', async () => {
    const agent = new MtlsAgent(
      staticX509Source(toSvid(clientSvid), bundles),
      authorizeId('spiffe://example.org/billing'),
    );
    const before = handled.length;
    try {
      // TLS options on the request cannot weaken the agent
      const err = await get(`${base}/x`, agent, { rejectUnauthorized: false }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(IdentityError);
      expect((err as Error).message).toBe(
        'tls-peer-unauthorized: spiffe://example.org/api is not spiffe://example.org/billing',
      );
      expect(handled.length).toBe(before);
    } finally {
      agent.close();
    }
  });

  it('refuses a plain https client without a certificate before any request is handled', async () => {
    const before = handled.length;
    const agent = new https.Agent({ keepAlive: false });
    const err = await get(`${base}/x`, agent, { rejectUnauthorized: false }).then(
      (r) => r,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(handled.length).toBe(before);
  });
});

describe('tlsClientOptions with https.request', () => {
  it('authorizer swap on a pooled socket: a socket verified for one authorizer never serves a request expecting another', async () => {
    const source = staticX509Source(toSvid(clientSvid), bundles);
    const request = (expected: string) =>
      new Promise<{ status: number } | { error: Error }>((resolve) => {
        // The documented use: spread the options into https.request, no agent given (so Node
        // would pick its keep-alive global agent, which pools by host and ignores checkServerIdentity).
        const req = https.request(
          {
            host: '127.0.0.1',
            port: Number(new URL(base).port),
            path: '/pooled',
            ...tlsClientOptions(source, authorizeId(expected)),
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
          },
        );
        req.on('error', (error) => resolve({ error }));
        req.end();
      });
    const before = handled.length;
    try {
      expect(await request('spiffe://example.org/api')).toEqual({ status: 200 });
      expect(handled.length).toBe(before + 1);
      const refused = await request('spiffe://example.org/billing');
      expect(refused).toMatchObject({
        error: { code: 'tls-peer-unauthorized' },
      });
      expect(handled.length).toBe(before + 1);
    } finally {
      https.globalAgent.destroy();
    }
  });
});

describe('undiciConnector', () => {
  it('undici.fetch does SPIFFE mTLS through the connector', async () => {
    const connect = undiciConnector(
      staticX509Source(toSvid(clientSvid), bundles),
      authorizeId('spiffe://example.org/api'),
    );
    const dispatcher = new UndiciAgent({ connect });
    try {
      const res = await undiciFetch(`${base}/fetch`, { dispatcher });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('hello spiffe://example.org/frontend');
    } finally {
      await dispatcher.close();
      connect.close();
    }
  });

  it('a refused server makes fetch reject with the IdentityError as cause, and nothing is handled', async () => {
    const connect = undiciConnector(
      staticX509Source(toSvid(clientSvid), bundles),
      authorizeId('spiffe://example.org/other'),
    );
    const dispatcher = new UndiciAgent({ connect });
    const before = handled.length;
    try {
      const err = await undiciFetch(`${base}/fetch`, { dispatcher }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err as Error & { cause?: unknown }).cause).toMatchObject({ code: 'tls-peer-unauthorized' });
      expect(handled.length).toBe(before);
    } finally {
      await dispatcher.close();
      connect.close();
    }
  });

  it('refuses a plain http: origin instead of sending the request in clear', async () => {
    const connect = undiciConnector(
      staticX509Source(toSvid(clientSvid), bundles),
      authorizeId('spiffe://example.org/api'),
    );
    const got: Array<Error | null> = [];
    await new Promise<void>((resolve) =>
      connect({ hostname: '127.0.0.1', protocol: 'http:', port: '80' }, (...args) => {
        got.push(args[0]);
        resolve();
      }),
    );
    connect.close();
    expect(got[0]).toMatchObject({ code: 'tls-invalid-argument' });
  });
});

describe('spiffeIdMiddleware', () => {
  it('refuses a request on a connection no SDK helper verified', () => {
    const errors: unknown[] = [];
    const req: { socket: object; spiffeId?: unknown } = { socket: {} };
    spiffeIdMiddleware()(req as never, {}, (e) => errors.push(e));
    expect(errors[0]).toMatchObject({ code: 'tls-peer-unverified', status: 401 });
    const optional: unknown[] = [];
    spiffeIdMiddleware({ required: false })(req as never, {}, (e) => optional.push(e));
    expect(optional).toEqual([undefined]);
    expect(req.spiffeId).toBeUndefined();
  });
});
