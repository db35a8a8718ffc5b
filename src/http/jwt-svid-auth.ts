/**
 * JWT-SVID bearer authentication for node:http, Express 5 and Fastify 5: `requireJwtSvid()`.
 *
 * The frameworks are never imported: the adapters are typed structurally.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BundleSet, JwtBundle } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import type { Auditor } from '../observability/index.js';
import {
  describeTachikomaId,
  SpiffeId,
  type TachikomaIdDescription,
  TrustDomain,
} from '../spiffeid/index.js';
import { SVID_LIMITS, type ValidateJwtSvidOptions, validateJwtSvid } from '../svid/index.js';

declare global {
  // Express's own augmentation point: `req.jwtSvid` in handlers after requireJwtSvid().
  namespace Express {
    /** Express request, with the caller authenticated by a JWT-SVID. */
    interface Request {
      /** Set by `requireJwtSvid()`: the caller authenticated by its JWT-SVID. */
      jwtSvid?: JwtSvidCaller | undefined;
    }
  }
}

/**
 * Where the middleware reads the JWT bundles it validates tokens with: a `JwtSource`
 * (`getJwtBundleSet()`), a `BundleSource` (`getBundleSet()`), or a fixed `BundleSet`/`JwtBundle`.
 * The bundles are read on every request, so a watched source's updates apply at once.
 */
export type JwtBundleProvider = JwtBundleSetSource | BundleSetSource | BundleSet | JwtBundle;

/** A source of JWT bundles (`JwtSource` fits). */
export interface JwtBundleSetSource {
  /** The current JWT bundles; throws when there are none to give (closed source). */
  getJwtBundleSet(): BundleSet;
}

/** A source of X.509 and JWT bundles (`BundleSource` fits). */
export interface BundleSetSource {
  /** The current bundles; throws when there are none to give (closed source). */
  getBundleSet(): BundleSet;
}

/** Options of {@link requireJwtSvid}. */
export interface RequireJwtSvidOptions {
  /** The JWT bundles (own and federated trust domains); see {@link JwtBundleProvider}. */
  source: JwtBundleProvider;
  /**
   * Who this service is: the token's `aud` must contain one of these values (usually this
   * service's SPIFFE ID). Mandatory and non-empty: there is no "accept any audience".
   */
  audience: string | readonly string[];
  /** The `service` label of audit events and metrics. Default: the first audience. */
  service?: string | undefined;
  /** Where `auth_attempt`/`auth_result` events go (logger, diagnostics channel, metrics). */
  auditor?: Auditor | undefined;
  /**
   * Require `aud` to hold exactly one value. Default `true`: a token for `[a, b]` could be
   * replayed by `a` to `b` (JWT-SVID §7.2). Set `false` only for callers you cannot change.
   */
  requireSingleAudience?: boolean | undefined;
  /** Leeway for `exp`, `nbf` and `iat`, in seconds (0 to 60). Default 5. */
  clockToleranceSec?: number | undefined;
  /** When set, `iat` is required and tokens older than this many seconds are refused. */
  maxTokenAgeSec?: number | undefined;
  /** The `realm` of `WWW-Authenticate` challenges. Default none. */
  realm?: string | undefined;
  /**
   * Send the rule that failed (the error code, e.g. `jwtsvid-expired`) to the client in
   * `error_description` and the body. Default `true`; `false` sends only `invalid_token`.
   */
  exposeReason?: boolean | undefined;
  /** The clock, for tests. Default the current time. */
  now?: (() => Date) | undefined;
  /**
   * The trust domains whose IDs follow the Tachikoma naming scheme, so that a caller of theirs
   * gets `identity` and `agentId`. Default: the trust domains of the `audience` values that are
   * SPIFFE IDs. A caller of any other trust domain (a federated one) gets neither: its
   * `/agent/alice` is not our agent `alice` (SPIFFE-ID §4.1.2).
   */
  namingTrustDomains?: readonly string[] | undefined;
}

/** The caller, as a validated JWT-SVID names it. */
export interface JwtSvidCaller {
  /** The token's subject: the caller's SPIFFE ID. */
  readonly spiffeId: SpiffeId;
  /**
   * What the Tachikoma naming scheme says about the ID (agent, pod, service), if it follows it
   * and belongs to one of the naming trust domains (see `namingTrustDomains`).
   */
  readonly identity: TachikomaIdDescription | undefined;
  /**
   * The agent id when the subject is `spiffe://<td>/agent/<id>` and `<td>` is one of the naming
   * trust domains (by default the trust domain of the audience), else `undefined`.
   */
  readonly agentId: string | undefined;
  /** Every claim of the token (deeply frozen). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The token's `aud` values. */
  readonly audience: readonly string[];
  /** When the token expires. */
  readonly expiresAt: Date;
}

/** A refused request: what to answer. */
export interface JwtSvidRefusal {
  /** `false`: the request is refused. */
  readonly ok: false;
  /** 401 (no or invalid token), 400 (malformed `Authorization`), 503 (no bundles to check with). */
  readonly status: 400 | 401 | 503;
  /** Why, with a stable `auth-` or `jwtsvid-` code. */
  readonly error: IdentityError;
  /** Response headers (`www-authenticate`, `cache-control`). */
  readonly headers: Readonly<Record<string, string>>;
  /** JSON response body: `{ error, error_description? }`. */
  readonly body: Readonly<Record<string, string>>;
}

/** An accepted request. */
export interface JwtSvidAcceptance {
  /** `true`: the token is valid. */
  readonly ok: true;
  /** Who the token names. */
  readonly caller: JwtSvidCaller;
}

/** The outcome of {@link JwtSvidAuth.check}. */
export type JwtSvidAuthResult = JwtSvidAcceptance | JwtSvidRefusal;

/** The parts of a request the middleware reads. */
export interface RequestHeadersLike {
  /** Parsed headers (Node lower-cases names and keeps the first `Authorization`). */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Raw header names and values, used to refuse repeated `Authorization` headers. */
  readonly rawHeaders?: readonly string[] | undefined;
  /** HTTP method, for audit events. */
  readonly method?: string | undefined;
  /** Request target, for audit events (the query string is never recorded). */
  readonly url?: string | undefined;
}

/** The parts of a Fastify 5 request the hook touches. */
export interface FastifyJwtRequest {
  /** The node:http request. */
  readonly raw: RequestHeadersLike;
  /** Set by the hook on success. */
  jwtSvid?: JwtSvidCaller | null | undefined;
}

/** The parts of a Fastify 5 reply the hook uses. */
export interface FastifyJwtReply {
  /** Sets the status code. */
  code(statusCode: number): FastifyJwtReply;
  /** Sets a response header. */
  header(key: string, value: string): FastifyJwtReply;
  /** Sends the (JSON) payload. */
  send(payload?: unknown): FastifyJwtReply;
}

/** The parts of a Fastify instance the plugin touches. */
export interface FastifyJwtInstance {
  /** Declares a request property. */
  decorateRequest(name: string, value: unknown): unknown;
  /** Registers a lifecycle hook. */
  addHook(
    name: 'onRequest',
    hook: (request: FastifyJwtRequest, reply: FastifyJwtReply) => Promise<unknown>,
  ): unknown;
}

/** A Fastify plugin function (encapsulation-transparent). */
export type FastifyJwtSvidPlugin = ((
  fastify: FastifyJwtInstance,
  opts: unknown,
  done: (err?: Error) => void,
) => void) & { readonly [key: symbol]: unknown };

/**
 * The middleware {@link requireJwtSvid} returns. Called as a function it is Express 5 (or
 * connect) middleware; its properties serve node:http and Fastify 5.
 */
export interface JwtSvidAuth {
  /**
   * Express 5 middleware: sets `req.jwtSvid` and calls `next()`, or answers 401/400/503 itself.
   *
   * @param req - the request.
   * @param res - the response.
   * @param next - continues the chain.
   */
  (
    req: IncomingMessage & { jwtSvid?: JwtSvidCaller | undefined },
    res: ServerResponse,
    next: (err?: unknown) => void,
  ): void;
  /**
   * node:http guard: resolves the caller, or writes the refusal and resolves `undefined`.
   *
   * @param req - the request.
   * @param res - the response (written only on refusal).
   */
  http(req: IncomingMessage, res: ServerResponse): Promise<JwtSvidCaller | undefined>;
  /**
   * Framework-free check: parses and validates, audits, and returns the outcome without writing
   * anything.
   *
   * @param req - anything with `headers` (and ideally `rawHeaders`, `method`, `url`).
   */
  check(req: RequestHeadersLike): Promise<JwtSvidAuthResult>;
  /** Fastify 5 `onRequest` hook: sets `request.jwtSvid` or answers the refusal. */
  readonly fastifyHook: (request: FastifyJwtRequest, reply: FastifyJwtReply) => Promise<unknown>;
  /** Fastify 5 plugin: decorates `request.jwtSvid` and adds the hook to every route of the instance. */
  readonly fastify: FastifyJwtSvidPlugin;
}

/** Callers of requests that passed a {@link requireJwtSvid} middleware. */
const callers = new WeakMap<object, JwtSvidCaller>();

/**
 * The caller a {@link requireJwtSvid} middleware authenticated for this request, or `undefined`.
 *
 * @param req - the node:http request (for Fastify, `request.raw`).
 */
export function getJwtSvidCaller(req: object): JwtSvidCaller | undefined {
  return typeof req === 'object' && req !== null ? callers.get(req) : undefined;
}

/** RFC 6750 §2.1: `Bearer` 1*SP b64token. The scheme is case-insensitive (RFC 9110 §11.1). */
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i;
/** A token-looking credential with the wrong syntax still names the Bearer scheme. */
const SCHEME = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?:[ \t]|$)/;
const MAX_AUDIT_TEXT = 256;

function authError(code: string, detail: string, cause?: unknown): IdentityError {
  return new IdentityError(code, detail, cause === undefined ? undefined : { cause });
}

function invalidOption(detail: string): never {
  throw authError('auth-invalid-option', detail);
}

function toBundleReader(source: unknown): () => BundleSet | JwtBundle {
  if (source instanceof BundleSet || source instanceof JwtBundle) return () => source;
  const s = source as { getJwtBundleSet?: unknown; getBundleSet?: unknown } | null;
  if (typeof s === 'object' && s !== null) {
    if (typeof s.getJwtBundleSet === 'function') {
      const get = s.getJwtBundleSet as () => BundleSet;
      return () => get.call(s);
    }
    if (typeof s.getBundleSet === 'function') {
      const get = s.getBundleSet as () => BundleSet;
      return () => get.call(s);
    }
  }
  return invalidOption(
    'source must be a JwtSource, a BundleSource, a BundleSet or a JwtBundle (something with getJwtBundleSet() or getBundleSet())',
  );
}

/** The trust domains the naming scheme applies to: given, or those of the SPIFFE ID audiences. */
function namingTrustDomains(given: unknown, audience: readonly string[]): ReadonlySet<string> {
  if (given === undefined) {
    const out = new Set<string>();
    for (const a of audience) {
      try {
        out.add(SpiffeId.parse(a).trustDomain.name);
      } catch {
        // not a SPIFFE ID: names no trust domain
      }
    }
    return out;
  }
  if (!Array.isArray(given)) invalidOption('namingTrustDomains must be a list of trust domain names');
  return new Set(
    given.map((td: unknown) => {
      try {
        return TrustDomain.parse(td as string).name;
      } catch {
        return invalidOption('every namingTrustDomains value must be a valid trust domain');
      }
    }),
  );
}

function checkAudience(audience: unknown): string[] {
  const list =
    typeof audience === 'string' ? [audience] : Array.isArray(audience) ? [...audience] : undefined;
  if (list === undefined || list.length === 0) {
    invalidOption('audience must be a non-empty string or a non-empty list of strings');
  }
  for (const a of list) {
    if (typeof a !== 'string' || a === '') invalidOption('every audience value must be a non-empty string');
  }
  return list as string[];
}

/** Characters allowed in a quoted-string of a challenge (RFC 6750 §3: %x20-21 / %x23-5B / %x5D-7E). */
function quotable(value: string): string {
  return value.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '');
}

function auditText(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const q = value.indexOf('?');
  const bare = q === -1 ? value : value.slice(0, q);
  return bare.length > MAX_AUDIT_TEXT ? `${bare.slice(0, MAX_AUDIT_TEXT)}…` : bare;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function countAuthorization(req: RequestHeadersLike): number {
  const raw = req.rawHeaders;
  if (!Array.isArray(raw)) return req.headers['authorization'] === undefined ? 0 : 1;
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (String(raw[i]).toLowerCase() === 'authorization') n++;
  return n;
}

/** Writes a refusal on a node:http (or Express) response. */
function sendRefusal(res: ServerResponse, refusal: JwtSvidRefusal): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(refusal.body);
  res.statusCode = refusal.status;
  for (const [k, v] of Object.entries(refusal.headers)) res.setHeader(k, v);
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}

/**
 * Requires a valid JWT-SVID in `Authorization: Bearer <token>` on every request.
 *
 * - Parsing is strict: one `Authorization` header, scheme `Bearer` (any case), one or more
 *   spaces, an RFC 6750 `b64token`; tokens in the query string or body are never read.
 * - The token is validated locally with `validateJwtSvid` against the JWT bundle of the token's
 *   own trust domain, read from `source` on each request (so bundle rotations apply at once):
 *   signature, algorithm allow-list, `exp`/`nbf`/`iat`, `aud` containing `audience` and (by
 *   default) holding only one value, `sub` a SPIFFE ID.
 * - No credentials or another scheme: **401** with `WWW-Authenticate: Bearer` (RFC 6750 §3.1: no
 *   error code). A malformed `Authorization` header: **400** with `error="invalid_request"`. An
 *   invalid token: **401** with `error="invalid_token"` and the rule that failed in
 *   `error_description` (e.g. `jwtsvid-expired`). No bundles to check with (the source is closed
 *   or not synced): **503**. Every refusal has a JSON body and `cache-control: no-store`.
 * - On success the caller's SPIFFE ID, agent id (`spiffe://<td>/agent/<id>`) and claims are on
 *   the request: `req.jwtSvid` (Express, Fastify) and {@link getJwtSvidCaller} (any).
 * - Every request is audited: `auth_attempt` and `auth_result` (mechanism `jwt-svid`, SPIFFE ID,
 *   method, path without query, status, duration, reason) through `auditor`.
 *
 * @param opts - bundles, audience and options.
 * @throws IdentityError `auth-invalid-option` for a missing source or audience, or a bad option.
 *
 * @example
 * ```ts
 * const jwt = await JwtSource.create();
 * const auth = requireJwtSvid({ source: jwt, audience: 'spiffe://example.org/service/teg-core' });
 * app.use(auth);                                     // Express 5
 * await fastify.register(auth.fastify);             // Fastify 5
 * http.createServer(async (req, res) => {           // node:http
 *   const caller = await auth.http(req, res);
 *   if (!caller) return;                              // 401/400/503 already sent
 *   res.end(`hello ${caller.agentId ?? caller.spiffeId}`);
 * });
 * ```
 */
export function requireJwtSvid(opts: RequireJwtSvidOptions): JwtSvidAuth {
  if (typeof opts !== 'object' || opts === null) invalidOption('options must be an object');
  const readBundles = toBundleReader(opts.source);
  const audience = checkAudience(opts.audience);
  const naming = namingTrustDomains(opts.namingTrustDomains, audience);
  const service = opts.service ?? audience[0]!;
  if (typeof service !== 'string' || service === '') invalidOption('service must be a non-empty string');
  const single = opts.requireSingleAudience ?? true;
  if (typeof single !== 'boolean') invalidOption('requireSingleAudience must be a boolean');
  const expose = opts.exposeReason ?? true;
  if (typeof expose !== 'boolean') invalidOption('exposeReason must be a boolean');
  const tolerance = opts.clockToleranceSec;
  if (
    tolerance !== undefined &&
    (typeof tolerance !== 'number' ||
      !Number.isFinite(tolerance) ||
      tolerance < 0 ||
      tolerance > SVID_LIMITS.jwtMaxClockToleranceSec)
  ) {
    invalidOption(`clockToleranceSec must be 0 to ${SVID_LIMITS.jwtMaxClockToleranceSec}`);
  }
  const maxAge = opts.maxTokenAgeSec;
  if (maxAge !== undefined && (typeof maxAge !== 'number' || !Number.isFinite(maxAge) || maxAge <= 0)) {
    invalidOption('maxTokenAgeSec must be a positive number of seconds');
  }
  const now = opts.now;
  if (now !== undefined && typeof now !== 'function')
    invalidOption('now must be a function returning a Date');
  if (opts.realm !== undefined && (typeof opts.realm !== 'string' || quotable(opts.realm) !== opts.realm)) {
    invalidOption('realm must be a string of printable ASCII without " or \\');
  }
  const realm = opts.realm === undefined ? '' : ` realm="${opts.realm}"`;
  const auditor = opts.auditor;

  const challenge = (error?: string, code?: string): string => {
    if (error === undefined) return `Bearer${realm}`;
    const params = [`error="${error}"`];
    if (code !== undefined && expose) params.push(`error_description="${quotable(code)}"`);
    return `Bearer${realm ? `${realm},` : ''} ${params.join(', ')}`;
  };

  const refuse = (status: 400 | 401 | 503, error: IdentityError, oauthError?: string): JwtSvidRefusal => {
    const headers: Record<string, string> = { 'cache-control': 'no-store' };
    let body: Record<string, string>;
    if (status === 503) {
      headers['retry-after'] = '1';
      body = { error: 'temporarily_unavailable' };
    } else {
      headers['www-authenticate'] = challenge(oauthError, oauthError === undefined ? undefined : error.code);
      body = oauthError === undefined ? { error: 'unauthorized' } : { error: oauthError };
    }
    if (expose) body['error_description'] = error.code;
    return { ok: false, status, error, headers, body };
  };

  const validate = async (req: RequestHeadersLike): Promise<JwtSvidAuthResult> => {
    const count = countAuthorization(req);
    if (count === 0) {
      return refuse(401, authError('auth-missing-token', 'the request has no Authorization header'));
    }
    if (count > 1) {
      return refuse(
        400,
        authError('auth-multiple-authorization', 'the request has more than one Authorization header'),
        'invalid_request',
      );
    }
    const value = headerValue(req.headers['authorization']);
    if (typeof value !== 'string' || value === '') {
      return refuse(401, authError('auth-missing-token', 'the Authorization header is empty'));
    }
    const scheme = SCHEME.exec(value)?.[1];
    if (scheme === undefined || scheme.toLowerCase() !== 'bearer') {
      return refuse(
        401,
        authError('auth-unsupported-scheme', 'the Authorization header does not use the Bearer scheme'),
      );
    }
    const m = value.length <= SVID_LIMITS.jwtMaxTokenChars + 64 ? BEARER.exec(value) : null;
    if (m === null) {
      return refuse(
        400,
        authError(
          'auth-malformed-header',
          `the Authorization header is not "Bearer <token>" with a token of at most ${SVID_LIMITS.jwtMaxTokenChars} base64url characters`,
        ),
        'invalid_request',
      );
    }
    let bundles: BundleSet | JwtBundle;
    try {
      bundles = readBundles();
    } catch (err) {
      return refuse(
        503,
        authError(
          'auth-bundles-unavailable',
          `no JWT bundles to validate the token with: ${(err as Error)?.message ?? String(err)}`,
          err,
        ),
      );
    }
    const vopts: ValidateJwtSvidOptions = { requireSingleAudience: single };
    if (tolerance !== undefined) vopts.clockToleranceSec = tolerance;
    if (maxAge !== undefined) vopts.maxTokenAgeSec = maxAge;
    if (now !== undefined) vopts.now = now();
    try {
      const svid = await validateJwtSvid(m[1]!, bundles, audience, vopts);
      // The naming scheme is ours: a federated trust domain's /agent/x is not our agent x.
      const identity = naming.has(svid.spiffeId.trustDomain.name)
        ? describeTachikomaId(svid.spiffeId)
        : undefined;
      const caller: JwtSvidCaller = Object.freeze({
        spiffeId: svid.spiffeId,
        identity,
        agentId: identity?.kind === 'agent' ? identity.agentId : undefined,
        claims: svid.claims,
        audience: svid.audience,
        expiresAt: svid.expiresAt,
      });
      return { ok: true, caller };
    } catch (err) {
      const e =
        err instanceof IdentityError
          ? err
          : authError(
              'auth-validation-failed',
              `the token could not be validated: ${(err as Error)?.message ?? String(err)}`,
              err,
            );
      return refuse(401, e, 'invalid_token');
    }
  };

  const check = async (req: RequestHeadersLike): Promise<JwtSvidAuthResult> => {
    const start = performance.now();
    const method = auditText(typeof req.method === 'string' ? req.method : undefined);
    const path = auditText(typeof req.url === 'string' ? req.url : undefined);
    auditor?.attempt({ mechanism: 'jwt-svid', service, method, path });
    let outcome: JwtSvidAuthResult;
    try {
      outcome = await validate(req);
    } catch (err) {
      // Not reachable in practice (validate catches everything); still fail closed.
      outcome = refuse(
        401,
        authError('auth-validation-failed', `authentication failed: ${(err as Error)?.message}`, err),
        'invalid_token',
      );
    }
    const durationMs = performance.now() - start;
    auditor?.result(
      outcome.ok
        ? {
            mechanism: 'jwt-svid',
            service,
            result: 'success',
            status: 200,
            spiffeId: outcome.caller.spiffeId.toString(),
            method,
            path,
            durationMs,
          }
        : {
            mechanism: 'jwt-svid',
            service,
            result: 'failure',
            status: outcome.status,
            method,
            path,
            durationMs,
            reason: outcome.error.code,
          },
    );
    return outcome;
  };

  const http = async (req: IncomingMessage, res: ServerResponse): Promise<JwtSvidCaller | undefined> => {
    const r = await check(req);
    if (!r.ok) {
      sendRefusal(res, r);
      return undefined;
    }
    callers.set(req, r.caller);
    return r.caller;
  };

  const express = (
    req: IncomingMessage & { jwtSvid?: JwtSvidCaller | undefined },
    res: ServerResponse,
    next: (err?: unknown) => void,
  ): void => {
    check(req).then(
      (r) => {
        if (!r.ok) {
          sendRefusal(res, r);
          return;
        }
        callers.set(req, r.caller);
        req.jwtSvid = r.caller;
        next();
      },
      (err: unknown) => next(err),
    );
  };

  const fastifyHook = async (request: FastifyJwtRequest, reply: FastifyJwtReply): Promise<unknown> => {
    const r = await check(request.raw);
    if (!r.ok) {
      reply.code(r.status);
      for (const [k, v] of Object.entries(r.headers)) reply.header(k, v);
      reply.send(r.body);
      return reply;
    }
    callers.set(request.raw, r.caller);
    request.jwtSvid = r.caller;
    return undefined;
  };

  const plugin = (fastify: FastifyJwtInstance, _opts: unknown, done: (err?: Error) => void): void => {
    fastify.decorateRequest('jwtSvid', null);
    fastify.addHook('onRequest', fastifyHook);
    done();
  };
  const fastify: FastifyJwtSvidPlugin = Object.assign(plugin, {
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: '@tachikoma/identity:jwt-svid',
  });

  return Object.assign(express, { http, check, fastifyHook, fastify });
}
