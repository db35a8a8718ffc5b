// requireJwtSvid: strict Bearer parsing, local JWT-SVID validation against the provider's current
// bundles, RFC 6750 challenges, the caller on the request (node:http, Express 5, Fastify 5), and
// audit events + the attempts counter for every request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BundleSet } from '../../../src/bundle/index.js';
import { IdentityError } from '../../../src/errors/index.js';
import {
  getJwtSvidCaller,
  type JwtSvidAuth,
  type JwtSvidCaller,
  type RequireJwtSvidOptions,
  requireJwtSvid,
} from '../../../src/http/jwt-svid-auth.js';
import { Auditor } from '../../../src/observability/index.js';
import { expectIdentityError } from '../../fixtures/errors.js';
import { createJwtAuthority, jwtBundleOf, mintJwtSvid, signJwt } from '../../fixtures/token.js';
import { captureAudit, listen, pointValue, rawRequest, recordingLogger, testMetrics } from './helpers.js';

const TD = 'tachikoma.test';
const AUD = `spiffe://${TD}/service/teg-core`;
const ALICE = `spiffe://${TD}/agent/alice_at_example_dot_com`;
const authority = createJwtAuthority({ trustDomain: TD });
const bundles = new BundleSet(jwtBundleOf(authority));
const token = (opts: Partial<Parameters<typeof mintJwtSvid>[1]> = {}): string =>
  mintJwtSvid(authority, { sub: ALICE, aud: AUD, ...opts });

/** A node:http server guarded by `auth`, answering with the caller it saw. */
async function guarded(auth: JwtSvidAuth) {
  return listen((req: IncomingMessage, res: ServerResponse) => {
    void auth.http(req, res).then((caller) => {
      if (!caller) return;
      const same = getJwtSvidCaller(req) === caller;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          spiffeId: caller.spiffeId.toString(),
          agentId: caller.agentId,
          kind: caller.identity?.kind,
          sub: caller.claims['sub'],
          audience: caller.audience,
          same,
        }),
      );
    });
  });
}

describe('requireJwtSvid on node:http', () => {
  const m = testMetrics();
  const logger = recordingLogger();
  let srv: Awaited<ReturnType<typeof listen>>;
  let audit: ReturnType<typeof captureAudit>;
  beforeAll(async () => {
    const auditor = new Auditor({ logger, metrics: m.metrics });
    srv = await guarded(requireJwtSvid({ source: bundles, audience: AUD, service: 'teg-core', auditor }));
  });
  afterAll(async () => {
    await srv.close();
    await m.shutdown();
  });
  afterEach(() => audit?.stop());

  const get = (headers: Array<[string, string]>, path = '/agents/x?secret=1') =>
    rawRequest(`${srv.url}${path}`, { headers });

  it('a valid token: 200, the caller (SPIFFE ID, agent id, claims) on the request, audited and counted', async () => {
    audit = captureAudit();
    const before = pointValue((await m.collect()).get('identity_auth_attempts_total'), {
      service: 'teg-core',
      result: 'success',
    });
    const r = await get([['authorization', `Bearer ${token()}`]]);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({
      spiffeId: ALICE,
      agentId: 'alice_at_example_dot_com',
      kind: 'agent',
      sub: ALICE,
      audience: [AUD],
      same: true,
    });
    expect(audit.attempts).toEqual([
      { event: 'auth_attempt', mechanism: 'jwt-svid', service: 'teg-core', method: 'GET', path: '/agents/x' },
    ]);
    expect(audit.results).toHaveLength(1);
    expect(audit.results[0]).toMatchObject({
      event: 'auth_result',
      mechanism: 'jwt-svid',
      service: 'teg-core',
      result: 'success',
      status: 200,
      spiffeId: ALICE,
      method: 'GET',
      path: '/agents/x',
    });
    expect(audit.results[0]!.durationMs).toBeGreaterThanOrEqual(0);
    expect(JSON.stringify(audit.results)).not.toContain('secret');
    const after = pointValue((await m.collect()).get('identity_auth_attempts_total'), {
      service: 'teg-core',
      result: 'success',
    });
    expect(after).toBe(((before as number | undefined) ?? 0) + 1);
  });

  it('no Authorization header: 401 with a bare Bearer challenge (no error code, RFC 6750 §3.1)', async () => {
    audit = captureAudit();
    const r = await get([]);
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer');
    expect(r.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(r.body)).toEqual({ error: 'unauthorized', error_description: 'auth-missing-token' });
    expect(audit.results[0]).toMatchObject({ result: 'failure', status: 401, reason: 'auth-missing-token' });
    expect(logger.lines.at(-1)).toMatchObject({ level: 'warn', msg: 'auth_result' });
  });

  it('another scheme: 401 auth-unsupported-scheme, bare challenge', async () => {
    const r = await get([['authorization', `Basic ${Buffer.from('a:b').toString('base64')}`]]);
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer');
    expect(JSON.parse(r.body).error_description).toBe('auth-unsupported-scheme');
  });

  it.each([
    ['no token', 'Bearer'],
    ['a tab instead of a space', `Bearer\t${token()}`],
    ['a character outside b64token', 'Bearer abc,def'],
    ['two tokens', `Bearer ${token()} ${token()}`],
  ])('malformed header (%s): 400 invalid_request', async (_name, value) => {
    const r = await get([['authorization', value]]);
    expect(r.status).toBe(400);
    expect(r.headers['www-authenticate']).toBe(
      'Bearer error="invalid_request", error_description="auth-malformed-header"',
    );
  });

  it('a header longer than any JWT-SVID is refused before decoding (Node already answers 431 above 16 KiB)', async () => {
    const auth = requireJwtSvid({ source: bundles, audience: AUD });
    const r = await auth.check({ headers: { authorization: `Bearer ${'a'.repeat(17_000)}` } });
    expect(r).toMatchObject({ ok: false, status: 400 });
    if (!r.ok) expect(r.error.code).toBe('auth-malformed-header');
  });

  it('the scheme is case-insensitive and 1*SP separates it', async () => {
    expect((await get([['authorization', `bEaReR   ${token()}`]])).status).toBe(200);
  });

  it('two Authorization headers: 400 auth-multiple-authorization (Node would keep only the first)', async () => {
    const r = await get([
      ['authorization', `Bearer ${token()}`],
      ['authorization', 'Bearer x.y.z'],
    ]);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).error_description).toBe('auth-multiple-authorization');
  });

  it.each([
    ['expired', () => token({ now: new Date(Date.now() - 3_600_000), ttlSec: 60 }), 'jwtsvid-expired'],
    ['wrong audience', () => token({ aud: `spiffe://${TD}/service/other` }), 'jwtsvid-audience-mismatch'],
    [
      'two audiences (replayable)',
      () => token({ aud: [AUD, `spiffe://${TD}/service/other`] }),
      'jwtsvid-audience-mismatch',
    ],
    [
      'signed by an unknown key',
      () => mintJwtSvid(createJwtAuthority({ trustDomain: TD }), { sub: ALICE, aud: AUD }),
      'jwtsvid-unknown-kid',
    ],
    [
      'from a trust domain without a bundle',
      () => token({ claims: { sub: 'spiffe://other.test/agent/a' } }),
      'jwtsvid-no-bundle',
    ],
    [
      'alg none',
      () =>
        signJwt({ header: { alg: 'none', kid: authority.kid }, claims: { sub: ALICE, aud: AUD, exp: 9e9 } }),
      'jwtsvid-unsupported-alg',
    ],
    ['not a JWT', () => 'abc.def', 'jwtsvid-malformed'],
  ])('%s: 401 invalid_token naming the rule', async (_name, make, code) => {
    audit = captureAudit();
    const r = await get([['authorization', `Bearer ${make()}`]]);
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe(`Bearer error="invalid_token", error_description="${code}"`);
    expect(JSON.parse(r.body)).toEqual({ error: 'invalid_token', error_description: code });
    expect(audit.results[0]).toMatchObject({
      mechanism: 'jwt-svid',
      result: 'failure',
      status: 401,
      reason: code,
    });
  });
});

describe('requireJwtSvid options and sources', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });
  async function serve(opts: Partial<RequireJwtSvidOptions>) {
    const srv = await guarded(requireJwtSvid({ source: bundles, audience: AUD, ...opts }));
    closers.push(srv.close);
    return (value?: string) =>
      rawRequest(`${srv.url}/`, { headers: value === undefined ? [] : [['authorization', value]] });
  }

  it('reads the bundles from the source on every request: a rotated JWT key applies at once', async () => {
    const next = createJwtAuthority({ trustDomain: TD });
    let current = bundles;
    const call = await serve({ source: { getJwtBundleSet: () => current } });
    const newToken = mintJwtSvid(next, { sub: ALICE, aud: AUD });
    expect((await call(`Bearer ${newToken}`)).status).toBe(401);
    current = new BundleSet(jwtBundleOf(authority, next));
    expect((await call(`Bearer ${newToken}`)).status).toBe(200);
    current = new BundleSet(jwtBundleOf(next));
    const r = await call(`Bearer ${token()}`); // the old key was removed
    expect(JSON.parse(r.body).error_description).toBe('jwtsvid-unknown-kid');
  });

  it('a BundleSource-shaped provider (getBundleSet) works too', async () => {
    const call = await serve({ source: { getBundleSet: () => bundles } });
    expect((await call(`Bearer ${token()}`)).status).toBe(200);
  });

  it('a source that cannot give bundles: 503 auth-bundles-unavailable, fail closed', async () => {
    const audit = captureAudit();
    try {
      const call = await serve({
        auditor: new Auditor(),
        source: {
          getJwtBundleSet: () => {
            throw new IdentityError('workload-closed', 'getJwtBundleSet: the JwtSource is closed');
          },
        },
      });
      const r = await call(`Bearer ${token()}`);
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('1');
      expect(r.headers['www-authenticate']).toBeUndefined();
      expect(JSON.parse(r.body)).toEqual({
        error: 'temporarily_unavailable',
        error_description: 'auth-bundles-unavailable',
      });
      expect(audit.results[0]).toMatchObject({ status: 503, reason: 'auth-bundles-unavailable' });
    } finally {
      audit.stop();
    }
  });

  it('requireSingleAudience: false accepts a token for several audiences', async () => {
    const call = await serve({ requireSingleAudience: false });
    expect((await call(`Bearer ${token({ aud: [AUD, 'spiffe://x.test/s/y'] })}`)).status).toBe(200);
  });

  it('exposeReason: false hides the rule; realm is in every challenge', async () => {
    const call = await serve({ exposeReason: false, realm: 'tachikoma' });
    const bad = await call(`Bearer ${token({ aud: 'spiffe://x.test/s/y' })}`);
    expect(bad.headers['www-authenticate']).toBe('Bearer realm="tachikoma", error="invalid_token"');
    expect(JSON.parse(bad.body)).toEqual({ error: 'invalid_token' });
    expect((await call()).headers['www-authenticate']).toBe('Bearer realm="tachikoma"');
  });

  it('the clock option and tolerance decide expiry', async () => {
    const t = token({ ttlSec: 60 });
    const later = new Date(Date.now() + 62_000);
    const strict = await serve({ now: () => later, clockToleranceSec: 0 });
    expect(JSON.parse((await strict(`Bearer ${t}`)).body).error_description).toBe('jwtsvid-expired');
    const lenient = await serve({ now: () => later, clockToleranceSec: 5 });
    expect((await lenient(`Bearer ${t}`)).status).toBe(200);
  });

  it('maxTokenAgeSec refuses old tokens', async () => {
    const call = await serve({ maxTokenAgeSec: 30 });
    const old = token({ now: new Date(Date.now() - 120_000), ttlSec: 600 });
    expect(JSON.parse((await call(`Bearer ${old}`)).body).error_description).toBe('jwtsvid-too-old');
  });

  it.each([
    ['no source', { source: undefined }],
    ['a source without bundles', { source: {} }],
    ['no audience', { audience: undefined }],
    ['an empty audience list', { audience: [] }],
    ['an empty audience value', { audience: [''] }],
    ['a tolerance above 60 s', { clockToleranceSec: 61 }],
    ['a non-positive max age', { maxTokenAgeSec: 0 }],
    ['a realm with a quote', { realm: 'a"b' }],
    ['a non-boolean single-audience flag', { requireSingleAudience: 'yes' }],
  ])('refuses %s: auth-invalid-option', (_name, patch) => {
    expectIdentityError(
      () => requireJwtSvid({ source: bundles, audience: AUD, ...(patch as object) } as RequireJwtSvidOptions),
      'auth-invalid-option',
    );
  });
});

describe('requireJwtSvid on Express 5 and Fastify 5', () => {
  const auth = requireJwtSvid({ source: bundles, audience: AUD });

  it('Express: sets req.jwtSvid and calls next; refusals never reach the route', async () => {
    const app = express();
    let reached = 0;
    app.use(auth);
    app.get('/who', (req, res) => {
      reached++;
      const c = req.jwtSvid as JwtSvidCaller;
      res.json({ agent: c.agentId, id: c.spiffeId.toString(), viaWeakMap: getJwtSvidCaller(req) === c });
    });
    const srv = await listen(app);
    try {
      const ok = await rawRequest(`${srv.url}/who`, { headers: [['authorization', `Bearer ${token()}`]] });
      expect(JSON.parse(ok.body)).toEqual({ agent: 'alice_at_example_dot_com', id: ALICE, viaWeakMap: true });
      const bad = await rawRequest(`${srv.url}/who`, {
        headers: [['authorization', `Bearer ${token({ aud: 'spiffe://x.test/y' })}`]],
      });
      expect(bad.status).toBe(401);
      expect(bad.headers['www-authenticate']).toContain('error="invalid_token"');
      expect(reached).toBe(1);
    } finally {
      await srv.close();
    }
  });

  it('Fastify: the plugin decorates request.jwtSvid for every route; refusals are answered by the hook', async () => {
    const app = Fastify();
    let reached = 0;
    await app.register(auth.fastify);
    app.get('/who', async (req) => {
      reached++;
      const c = (req as unknown as { jwtSvid: JwtSvidCaller }).jwtSvid;
      return { agent: c.agentId, id: c.spiffeId.toString() };
    });
    try {
      const ok = await app.inject({ url: '/who', headers: { authorization: `Bearer ${token()}` } });
      expect(ok.json()).toEqual({ agent: 'alice_at_example_dot_com', id: ALICE });
      const none = await app.inject({ url: '/who' });
      expect(none.statusCode).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Bearer');
      expect(none.json()).toEqual({ error: 'unauthorized', error_description: 'auth-missing-token' });
      const expired = await app.inject({
        url: '/who',
        headers: { authorization: `Bearer ${token({ now: new Date(Date.now() - 600_000), ttlSec: 60 })}` },
      });
      expect(expired.statusCode).toBe(401);
      expect(expired.headers['www-authenticate']).toBe(
        'Bearer error="invalid_token", error_description="jwtsvid-expired"',
      );
      expect(reached).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('check() never writes: it returns the outcome for any framework', async () => {
    const r = await auth.check({ headers: { authorization: `Bearer ${token()}` }, method: 'GET', url: '/' });
    expect(r.ok).toBe(true);
    const refused = await auth.check({ headers: {} });
    expect(refused).toMatchObject({ ok: false, status: 401, headers: { 'www-authenticate': 'Bearer' } });
    if (!refused.ok) expect(refused.error.code).toBe('auth-missing-token');
  });
});
