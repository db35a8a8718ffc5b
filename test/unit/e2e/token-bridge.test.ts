// TokenBridge: JWT-SVIDs for agent identities and allow-listed service audiences, fetched from a
// Workload API (the in-process dev server) through a JwtSource, checked, and served as
// { token, expires_in, token_type } by a node:http handler.
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DevWorkloadServer } from '../../../src/dev/index.js';
import { type JwtSvidFetcher, TokenBridge } from '../../../src/http/token-bridge.js';
import { SpiffeId } from '../../../src/spiffeid/index.js';
import { parseJwtSvidInsecure, validateJwtSvid } from '../../../src/svid/index.js';
import { JwtSource } from '../../../src/workload/index.js';
import { expectIdentityError, expectIdentityRejection } from '../../fixtures/errors.js';
import { createJwtAuthority, mintJwtSvid } from '../../fixtures/token.js';
import { listen, rawRequest, recordingLogger } from './helpers.js';

const TD = 'bridge.test';
const TEG = `spiffe://${TD}/service/teg-core`;
const REGISTRY = `spiffe://${TD}/service/registry-backend`;
const ALICE = `spiffe://${TD}/agent/alice_at_example_dot_com`;
const BOB = `spiffe://${TD}/agent/bob_at_example_dot_com`; // not served by the Workload API

describe('TokenBridge', () => {
  let dev: DevWorkloadServer;
  let jwt: JwtSource;
  const logger = recordingLogger();
  let bridge: TokenBridge;
  beforeAll(async () => {
    dev = await DevWorkloadServer.start({
      trustDomain: TD,
      identities: [REGISTRY, ALICE],
      jwtSvidTtlMs: 120_000,
    });
    jwt = await JwtSource.create({ address: dev.address });
    bridge = new TokenBridge({ source: jwt, audiences: [TEG], logger });
  });
  afterAll(async () => {
    await jwt?.close();
    await dev?.close();
  });

  it('issues a JWT-SVID for the agent and audience: the Workload API’s token, valid against its bundle', async () => {
    const t = await bridge.issue(ALICE, TEG);
    expect(t.token_type).toBe('Bearer');
    expect(t.expires_in).toBeGreaterThan(100);
    expect(t.expires_in).toBeLessThanOrEqual(120);
    const svid = await validateJwtSvid(t.token, dev.bundleSet(), TEG);
    expect(svid.spiffeId.toString()).toBe(ALICE);
    expect(svid.audience).toEqual([TEG]);
    expect(Object.keys(t).sort()).toEqual(['expires_in', 'token', 'token_type']);
    expect(logger.lines.at(-1)).toMatchObject({
      level: 'info',
      fields: { event: 'token_issued', subject: ALICE, audience: TEG },
    });
    expect(JSON.stringify(logger.lines)).not.toContain(t.token);
  });

  it('refuses an audience that is not on the allow-list', async () => {
    await expectIdentityRejection(bridge.issue(ALICE, REGISTRY), 'auth-audience-not-allowed');
    await expectIdentityRejection(bridge.issue(ALICE, 'not a spiffe id'), 'auth-audience-not-allowed');
    expect(logger.lines.at(-1)).toMatchObject({
      level: 'warn',
      fields: { reason: 'auth-audience-not-allowed' },
    });
  });

  it('by default only agents of the audiences’ trust domain are subjects', async () => {
    await expectIdentityRejection(bridge.issue(REGISTRY, TEG), 'auth-subject-not-allowed');
    await expectIdentityRejection(
      bridge.issue('spiffe://other.test/agent/a', TEG),
      'auth-subject-not-allowed',
    );
    await expectIdentityRejection(
      bridge.issue('spiffe://bridge.test/agent/../x', TEG),
      'auth-invalid-subject',
    );
  });

  it('a custom subject matcher widens or narrows that', async () => {
    const onlyRegistry = new TokenBridge({
      source: jwt,
      audiences: [SpiffeId.parse(TEG)],
      subjects: (id) => id.toString() === REGISTRY,
    });
    const t = await onlyRegistry.issue(REGISTRY, TEG);
    expect(parseJwtSvidInsecure(t.token).spiffeId.toString()).toBe(REGISTRY);
    await expectIdentityRejection(onlyRegistry.issue(ALICE, TEG), 'auth-subject-not-allowed');
  });

  it('an agent identity the Workload API does not serve: auth-token-unavailable, the workload error as cause', async () => {
    const err = await expectIdentityRejection(bridge.issue(BOB, TEG), 'auth-token-unavailable');
    expect((err.cause as { code?: string }).code).toBe('workload-no-identity');
  });

  it('a token for another subject or audience from the source is never handed out', async () => {
    const auth = createJwtAuthority({ trustDomain: TD });
    const lying = (sub: string, aud: string): JwtSvidFetcher => ({
      fetchJwtSvid: async () => parseJwtSvidInsecure(mintJwtSvid(auth, { sub, aud })),
    });
    await expectIdentityRejection(
      new TokenBridge({ source: lying(REGISTRY, TEG), audiences: [TEG] }).issue(ALICE, TEG),
      'auth-token-mismatch',
    );
    await expectIdentityRejection(
      new TokenBridge({ source: lying(ALICE, REGISTRY), audiences: [TEG] }).issue(ALICE, TEG),
      'auth-token-mismatch',
    );
  });

  it('extra-audience smuggling: a token also valid for an audience off the allow-list is never handed out', async () => {
    const auth = createJwtAuthority({ trustDomain: TD });
    const source: JwtSvidFetcher = {
      fetchJwtSvid: async () => parseJwtSvidInsecure(mintJwtSvid(auth, { sub: ALICE, aud: [TEG, REGISTRY] })),
    };
    await expectIdentityRejection(
      new TokenBridge({ source, audiences: [TEG] }).issue(ALICE, TEG),
      'auth-token-mismatch',
    );
  });

  it('a token with less than minRemainingSec left is refused', async () => {
    const late = new TokenBridge({
      source: jwt,
      audiences: [TEG],
      minRemainingSec: 30,
      now: () => new Date(Date.now() + 110_000),
    });
    await expectIdentityRejection(late.issue(ALICE, TEG), 'auth-token-expiring');
  });

  it('a source that never answers is cut off at timeoutMs', async () => {
    let seen: number | undefined;
    const slow = new TokenBridge({
      source: {
        fetchJwtSvid: (p) => {
          seen = p.timeoutMs;
          return Promise.reject(new Error('deadline exceeded'));
        },
      },
      audiences: [TEG],
      timeoutMs: 1234,
    });
    await expectIdentityRejection(slow.issue(ALICE, TEG), 'auth-token-unavailable');
    expect(seen).toBe(1234);
  });

  it.each([
    ['no source', { source: undefined }],
    ['no audiences', { audiences: [] }],
    ['a bad audience', { audiences: ['teg-core'] }],
    ['a trust domain as audience', { audiences: [`spiffe://${TD}`] }],
    ['a zero timeout', { timeoutMs: 0 }],
    ['minRemainingSec below 1', { minRemainingSec: 0 }],
  ])('refuses %s: auth-invalid-option', (_name, patch) => {
    expectIdentityError(
      () => new TokenBridge({ source: jwt, audiences: [TEG], ...(patch as object) } as never),
      'auth-invalid-option',
    );
  });

  describe('handler (POST /api/v1/teg/token)', () => {
    let srv: Awaited<ReturnType<typeof listen>>;
    beforeAll(async () => {
      // The test stands in for mTLS: the authenticated subject arrives in a header.
      const handler = bridge.handler({
        getSubject: (req: IncomingMessage) => req.headers['x-test-subject'] as string | undefined,
        defaultAudience: TEG,
        maxBodyBytes: 256,
      });
      srv = await listen((req, res) => void handler(req, res));
    });
    afterAll(() => srv.close());
    const post = (headers: Array<[string, string]>, body?: string, method = 'POST') =>
      rawRequest(`${srv.url}/api/v1/teg/token`, { method, headers, ...(body === undefined ? {} : { body }) });

    it('200 { token, expires_in, token_type } with no-store, for the authenticated agent', async () => {
      const r = await post([['x-test-subject', ALICE]]);
      expect(r.status).toBe(200);
      expect(r.headers['cache-control']).toBe('no-store');
      expect(r.headers['pragma']).toBe('no-cache');
      const body = JSON.parse(r.body) as { token: string; expires_in: number; token_type: string };
      expect(body.token_type).toBe('Bearer');
      expect(parseJwtSvidInsecure(body.token).spiffeId.toString()).toBe(ALICE);
      const explicit = await post(
        [
          ['x-test-subject', ALICE],
          ['content-type', 'application/json'],
        ],
        JSON.stringify({ audience: TEG }),
      );
      expect(explicit.status).toBe(200);
    });

    it.each([
      ['an unauthenticated caller', [], undefined, 'POST', 401, 'unauthorized', 'auth-unauthenticated'],
      [
        'GET',
        [['x-test-subject', ALICE]],
        undefined,
        'GET',
        405,
        'invalid_request',
        'auth-method-not-allowed',
      ],
      [
        'a service as subject',
        [['x-test-subject', REGISTRY]],
        undefined,
        'POST',
        403,
        'access_denied',
        'auth-subject-not-allowed',
      ],
      [
        'another audience',
        [
          ['x-test-subject', ALICE],
          ['content-type', 'application/json'],
        ],
        JSON.stringify({ audience: REGISTRY }),
        'POST',
        400,
        'invalid_target',
        'auth-audience-not-allowed',
      ],
      [
        'a subject in the body',
        [
          ['x-test-subject', ALICE],
          ['content-type', 'application/json'],
        ],
        JSON.stringify({ subject: BOB }),
        'POST',
        400,
        'invalid_request',
        'auth-invalid-request',
      ],
      [
        'a body that is not JSON',
        [
          ['x-test-subject', ALICE],
          ['content-type', 'application/json'],
        ],
        '{',
        'POST',
        400,
        'invalid_request',
        'auth-invalid-request',
      ],
      [
        'a JSON array',
        [
          ['x-test-subject', ALICE],
          ['content-type', 'application/json'],
        ],
        '[]',
        'POST',
        400,
        'invalid_request',
        'auth-invalid-request',
      ],
      [
        'a non-JSON content type',
        [
          ['x-test-subject', ALICE],
          ['content-type', 'text/plain'],
        ],
        'audience',
        'POST',
        415,
        'invalid_request',
        'auth-unsupported-media-type',
      ],
      [
        'a body over the limit',
        [
          ['x-test-subject', ALICE],
          ['content-type', 'application/json'],
        ],
        JSON.stringify({ audience: 'x'.repeat(300) }),
        'POST',
        413,
        'invalid_request',
        'auth-body-too-large',
      ],
      [
        'an agent the API does not serve',
        [['x-test-subject', BOB]],
        undefined,
        'POST',
        503,
        'temporarily_unavailable',
        'auth-token-unavailable',
      ],
    ] as const)('%s: %i', async (_name, headers, body, method, status, error, code) => {
      const r = await post(headers as unknown as Array<[string, string]>, body, method);
      expect(r.status).toBe(status);
      expect(JSON.parse(r.body)).toEqual({ error, error_description: code });
      expect(r.headers['cache-control']).toBe('no-store');
    });
  });
});
