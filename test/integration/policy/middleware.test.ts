// Authorization middleware on real node:http, Express 5 and Fastify 5 servers, deciding with the
// service-graph and agent self-access example policies compiled by the real opa.
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AuthorizationOptions,
  type AuthorizationOutcome,
  expressAuthorization,
  fastifyAuthorization,
  httpAuthorization,
  PolicyEngine,
  withAuthorization,
} from '../../../src/policy/index.js';
import { SpiffeId } from '../../../src/spiffeid/index.js';
import { agentSelfAccess, compileWithCapabilities, serviceGraph } from './helpers.js';

const TD = 'tachikoma.internal';
const TEG_CORE = `spiffe://${TD}/service/teg-core`;
const REGISTRY = `spiffe://${TD}/service/registry-backend`;

let graph: PolicyEngine;
let agents: PolicyEngine;

beforeAll(async () => {
  graph = await PolicyEngine.fromBundle(
    await compileWithCapabilities(serviceGraph.files, ['tachikoma/service_graph/decision'], {
      data: serviceGraph.data,
    }),
  );
  agents = await PolicyEngine.fromBundle(
    await compileWithCapabilities(
      agentSelfAccess.files,
      ['tachikoma/agent_self_access/allow', 'tachikoma/agent_self_access/reason'],
      { data: agentSelfAccess.data },
    ),
  );
});

afterAll(async () => {
  await graph.close();
  await agents.close();
});

/** The caller identity travels in a test header here; mTLS and JWT-SVID layers supply it for real. */
function callerHeader(req: { headers: IncomingMessage['headers'] }): string | undefined {
  const v = req.headers['x-test-caller'];
  if (v === 'invalid') throw new Error('credentials rejected');
  return typeof v === 'string' ? v : undefined;
}

interface Reply {
  status: number;
  body: string;
}

function send(port: number, method: string, path: string, caller?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: caller === undefined ? {} : { 'x-test-caller': caller },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('node:http', () => {
  it('allows along the service graph and refuses the rest with the reason', async () => {
    const outcomes: AuthorizationOutcome[] = [];
    const guard = httpAuthorization({
      engine: graph,
      entrypoint: 'tachikoma/service_graph/decision',
      getCaller: callerHeader,
      target: SpiffeId.parse(TEG_CORE),
      onDecision: (o) => outcomes.push(o),
    });
    const server = createServer(async (req, res) => {
      if (!(await guard(req, res))) return;
      res.end('served');
    });
    const port = await listen(server);
    try {
      expect(await send(port, 'GET', '/v1/teg', REGISTRY)).toEqual({ status: 200, body: 'served' });
      const denied = await send(port, 'GET', '/v1/teg', `spiffe://${TD}/service/audit-logger`);
      expect(denied.status).toBe(403);
      expect(JSON.parse(denied.body)).toMatchObject({
        error: 'forbidden',
        reason: 'audit-logger may not call teg-core',
      });
      expect(JSON.parse(denied.body).decision_id).toMatch(/^[0-9a-f-]{36}$/);
      const anonymous = await send(port, 'GET', '/v1/teg');
      expect(anonymous.status).toBe(403);
      expect(JSON.parse(anonymous.body).reason).toBe('the caller is not a service of this trust domain');
      expect((await send(port, 'GET', '/v1/teg', 'invalid')).status).toBe(401);
      expect((await send(port, 'GET', '/v1/../admin', REGISTRY)).status).toBe(400);
      expect(outcomes.map((o) => o.kind)).toEqual([
        'allow',
        'deny',
        'deny',
        'unauthenticated',
        'bad-request',
      ]);
      expect(outcomes[0]).toMatchObject({
        input: { caller: REGISTRY, target: TEG_CORE, method: 'GET', path: ['v1', 'teg'] },
      });
    } finally {
      await stop(server);
    }
  });

  it('fails closed when the engine fails (500 by default, configurable)', async () => {
    const broken = await PolicyEngine.fromBundle(
      await compileWithCapabilities(serviceGraph.files, ['tachikoma/service_graph/decision'], {
        data: serviceGraph.data,
      }),
    );
    await broken.close();
    const opts: AuthorizationOptions<IncomingMessage> = {
      engine: broken,
      entrypoint: 'tachikoma/service_graph/decision',
      getCaller: callerHeader,
      target: TEG_CORE,
    };
    let served = 0;
    const server = createServer(
      withAuthorization(opts, (_req, res) => {
        served++;
        res.end('served');
      }),
    );
    const port = await listen(server);
    const other = createServer(
      withAuthorization({ ...opts, failureStatus: 503 }, (_req, res) => res.end('served')),
    );
    const otherPort = await listen(other);
    try {
      const r = await send(port, 'GET', '/v1/teg', REGISTRY);
      expect(r.status).toBe(500);
      expect(JSON.parse(r.body)).toEqual({ error: 'authorization failed' });
      expect((await send(otherPort, 'GET', '/v1/teg', REGISTRY)).status).toBe(503);
      expect(served).toBe(0);
    } finally {
      await stop(server);
      await stop(other);
    }
  });
});

describe('express 5', () => {
  it('runs the agent self-access policy as middleware', async () => {
    const app = express();
    const router = express.Router();
    router.use(
      expressAuthorization({
        engine: agents,
        entrypoint: 'tachikoma/agent_self_access/allow',
        reasonEntrypoint: 'tachikoma/agent_self_access/reason',
        getCaller: (req: express.Request) => callerHeader(req),
      }),
    );
    router.get('/agents/:id', (req, res) => {
      res.json({ id: req.params['id'] });
    });
    router.put('/agents/:id', (_req, res) => {
      res.status(204).end();
    });
    router.delete('/agents/:id', (_req, res) => {
      res.status(204).end();
    });
    app.use(router);
    const server = createServer(app);
    const port = await listen(server);
    const alice = `spiffe://${TD}/agent/alice`;
    try {
      expect(await send(port, 'GET', '/agents/alice', alice)).toEqual({
        status: 200,
        body: '{"id":"alice"}',
      });
      expect((await send(port, 'PUT', '/agents/alice', alice)).status).toBe(204);
      const other = await send(port, 'GET', '/agents/bob', alice);
      expect(other.status).toBe(403);
      expect(JSON.parse(other.body).reason).toBe('an agent may only access its own record, agents/<its id>');
      const del = await send(port, 'DELETE', '/agents/alice', alice);
      expect(del.status).toBe(403);
      expect(JSON.parse(del.body).reason).toBe('agents may only GET or PUT their own record');
      expect((await send(port, 'GET', '/agents/alice', `spiffe://${TD}/service/teg-core`)).status).toBe(403);
      expect((await send(port, 'GET', '/agents/alice', 'invalid')).status).toBe(401);
      expect((await send(port, 'GET', '/agents/alice%2F..%2Fbob', alice)).status).toBe(400);
    } finally {
      await stop(server);
    }
  });

  it('reads the path from originalUrl inside a mounted router', async () => {
    const seen: unknown[] = [];
    const app = express();
    const router = express.Router();
    router.use(
      expressAuthorization({
        engine: graph,
        entrypoint: 'tachikoma/service_graph/decision',
        getCaller: () => REGISTRY,
        target: TEG_CORE,
        buildInput: (facts) => {
          seen.push(facts.path);
          return { caller: facts.caller, target: facts.target, method: facts.method, path: facts.path };
        },
      }),
    );
    router.get('/x', (_req, res) => {
      res.send('ok');
    });
    app.use('/mounted', router);
    const server = createServer(app);
    const port = await listen(server);
    try {
      expect((await send(port, 'GET', '/mounted/x?debug=1', REGISTRY)).status).toBe(200);
      expect(seen).toEqual([['mounted', 'x']]);
    } finally {
      await stop(server);
    }
  });
});

describe('fastify 5', () => {
  let app: FastifyInstance;
  let port: number;
  beforeAll(async () => {
    app = Fastify();
    app.addHook(
      'onRequest',
      fastifyAuthorization({
        engine: graph,
        entrypoint: 'tachikoma/service_graph/decision',
        getCaller: (req: FastifyRequest) => callerHeader(req),
        target: TEG_CORE,
      }),
    );
    app.get('/v1/teg', async () => ({ ok: true }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
    return () => app.close();
  });

  it('allows along the graph and answers 403 with the reason otherwise', async () => {
    expect(await send(port, 'GET', '/v1/teg', REGISTRY)).toEqual({ status: 200, body: '{"ok":true}' });
    const denied = await send(port, 'GET', '/v1/teg', `spiffe://${TD}/service/federation-hub`);
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body)).toMatchObject({
      error: 'forbidden',
      reason: 'federation-hub may not call teg-core',
    });
    expect((await send(port, 'GET', '/v1/teg', 'invalid')).status).toBe(401);
    expect((await send(port, 'GET', '/v1//teg', REGISTRY)).status).toBe(400);
  });
});
