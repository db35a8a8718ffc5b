/**
 * Authorization middleware for node:http, Express 5 and Fastify 5, backed by a policy engine.
 *
 * The frameworks are never imported: the adapters are typed structurally, so this module loads
 * without Express or Fastify installed.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { IdentityError } from '../errors/index.js';
import { describeThrown } from './wasm.js';

/** The default input document the policy receives. */
export interface AuthorizationInput {
  /** Caller SPIFFE ID (from `getCaller`), or `null` for an anonymous request. */
  readonly caller: string | null;
  /** This service's SPIFFE ID (from `target`), or `null`. */
  readonly target: string | null;
  /** HTTP method, as sent (`GET`). */
  readonly method: string;
  /** Percent-decoded path segments: `/agents/a1` → `['agents', 'a1']`. */
  readonly path: readonly string[];
  /** Query parameters, each with all its values: `?a=1&a=2` → `{ a: ['1', '2'] }`. */
  readonly query: Readonly<Record<string, readonly string[]>>;
}

/** Facts about a request handed to a custom input builder. */
export interface RequestFacts<Req> extends AuthorizationInput {
  /** The framework's request object. */
  readonly req: Req;
  /** The raw request target (`/agents/a1?x=1`). */
  readonly url: string;
}

/** What the middleware needs from a policy engine (a {@link PolicyEngine} fits). */
export interface PolicyEvaluator {
  /** Evaluates an entrypoint; throws when evaluation fails. */
  evaluate(entrypoint: string, input?: unknown): EvaluatedDecision;
}

/** The parts of a decision the middleware reads. */
export interface EvaluatedDecision {
  /** Decision id. */
  readonly id: string;
  /** The entrypoint's value, `undefined` when undefined. */
  readonly result: unknown;
}

/** A caller identity: a SPIFFE ID string or anything whose `toString()` is one (a `SpiffeId`). */
export type CallerId = string | StringConvertible;

/** Anything with a `toString()` (a `SpiffeId`). */
export interface StringConvertible {
  /** Returns the SPIFFE ID string. */
  toString(): string;
}

/** Options of the authorization middleware. */
export interface AuthorizationOptions<Req> {
  /** The policy engine. */
  engine: PolicyEvaluator;
  /**
   * The entrypoint deciding the request, e.g. `tachikoma/service_graph/decision`. Its result is
   * either a boolean (`true` allows) or an object `{ allow: boolean, reason?: string }`. Anything
   * else denies.
   */
  entrypoint: string;
  /**
   * Returns the authenticated caller: the mTLS peer's SPIFFE ID or a validated JWT-SVID subject.
   * `null`/`undefined` means anonymous. Throwing means the credentials are invalid (401).
   */
  getCaller: (req: Req) => CallerId | null | undefined | Promise<CallerId | null | undefined>;
  /** This service's SPIFFE ID, or a function of the request. Default `null`. */
  target?: CallerId | ((req: Req) => CallerId | null | undefined) | undefined;
  /** Replaces the default input document. */
  buildInput?: ((facts: RequestFacts<Req>) => unknown) | undefined;
  /**
   * An entrypoint returning a reason string, evaluated only on deny when the decision carried no
   * reason of its own.
   */
  reasonEntrypoint?: string | undefined;
  /** Whether the policy's deny reason is sent to the client. Default true. */
  exposeReason?: boolean | undefined;
  /**
   * Status for an engine failure (evaluation error, closed engine, bad input builder). The request
   * is refused either way. Default 500.
   */
  failureStatus?: 403 | 500 | 503 | undefined;
  /** Called with every outcome (for audit logs). Must not throw. */
  onDecision?: ((outcome: AuthorizationOutcome, req: Req) => void) | undefined;
}

/** The outcome of authorizing one request. */
export type AuthorizationOutcome = AllowOutcome | DenyOutcome | FailedOutcome;

/** The policy allowed the request. */
export interface AllowOutcome {
  /** Discriminant. */
  readonly kind: 'allow';
  /** Id of the deciding evaluation. */
  readonly decisionId: string;
  /** The input the policy saw. */
  readonly input: unknown;
}

/** The policy denied the request. */
export interface DenyOutcome {
  /** Discriminant. */
  readonly kind: 'deny';
  /** Id of the deciding evaluation. */
  readonly decisionId: string;
  /** The policy's reason, or `denied by policy`. */
  readonly reason: string;
  /** The input the policy saw. */
  readonly input: unknown;
}

/** The request was refused before or instead of a decision. */
export interface FailedOutcome {
  /** `unauthenticated`: `getCaller` threw; `bad-request`: ambiguous path; `error`: engine failure. */
  readonly kind: 'unauthenticated' | 'bad-request' | 'error';
  /** What went wrong. */
  readonly error: IdentityError;
}

const DEFAULT_DENY_REASON = 'denied by policy';

function badRequest(detail: string): IdentityError {
  return new IdentityError('policy-request-invalid', detail);
}

/** A request target split for the policy. */
export interface ParsedTarget {
  /** Percent-decoded path segments. */
  path: string[];
  /** Query parameters with all their values (null-prototype object). */
  query: Record<string, string[]>;
}

/**
 * Splits a request target into decoded path segments and query parameters, refusing ambiguous
 * paths (`.`/`..` segments, encoded `/`, empty segments) that routers might read differently.
 *
 * @throws IdentityError `policy-request-invalid`.
 */
export function parseRequestTarget(url: string): ParsedTarget {
  let target = url;
  const hash = target.indexOf('#');
  if (hash !== -1) target = target.slice(0, hash);
  const q = target.indexOf('?');
  let rawPath = q === -1 ? target : target.slice(0, q);
  const rawQuery = q === -1 ? '' : target.slice(q + 1);
  const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/]*/.exec(rawPath);
  if (scheme !== null) rawPath = rawPath.slice(scheme[0].length); // absolute-form (proxy requests)
  if (!rawPath.startsWith('/')) {
    if (rawPath === '' || rawPath === '*') rawPath = '/';
    else throw badRequest('the request path must start with /');
  }
  const raw = rawPath.slice(1).split('/');
  if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop(); // one trailing slash
  const path: string[] = [];
  for (const seg of raw) {
    if (seg === '') throw badRequest('the request path has an empty segment (//)');
    let decoded: string;
    try {
      decoded = decodeURIComponent(seg);
    } catch {
      throw badRequest(`path segment ${JSON.stringify(seg)} is not valid percent-encoding`);
    }
    if (decoded === '.' || decoded === '..') throw badRequest('the request path has a . or .. segment');
    if (decoded.includes('/')) throw badRequest('the request path has an encoded / in a segment');
    path.push(decoded);
  }
  const query: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  for (const [k, v] of new URLSearchParams(rawQuery)) {
    const list = query[k];
    if (list === undefined) query[k] = [v];
    else list.push(v);
  }
  return { path, query };
}

function idString(v: CallerId | null | undefined): string | null {
  if (v === null || v === undefined) return null;
  const s = typeof v === 'string' ? v : v.toString();
  return typeof s === 'string' ? s : null;
}

function interpret(result: unknown): { allow: boolean; reason: string | undefined } {
  if (result === true) return { allow: true, reason: undefined };
  if (typeof result === 'object' && result !== null && !Array.isArray(result)) {
    const r = result as { allow?: unknown; reason?: unknown };
    return { allow: r.allow === true, reason: typeof r.reason === 'string' ? r.reason : undefined };
  }
  return { allow: false, reason: undefined };
}

/**
 * Authorizes one request, independent of any framework.
 *
 * @param opts - middleware options.
 * @param req - the framework's request (handed to `getCaller`, `target` and `buildInput`).
 * @param method - the HTTP method.
 * @param url - the raw request target.
 */
export async function authorizeRequest<Req>(
  opts: AuthorizationOptions<Req>,
  req: Req,
  method: string,
  url: string,
): Promise<AuthorizationOutcome> {
  let caller: string | null;
  try {
    caller = idString(await opts.getCaller(req));
  } catch (err) {
    const error =
      err instanceof IdentityError
        ? err
        : new IdentityError('policy-caller-unauthenticated', `getCaller failed: ${describeThrown(err)}`, {
            cause: err,
          });
    return { kind: 'unauthenticated', error };
  }
  let parsed: ParsedTarget;
  try {
    parsed = parseRequestTarget(url);
  } catch (err) {
    return { kind: 'bad-request', error: err as IdentityError };
  }
  try {
    const t = opts.target;
    const target = idString(typeof t === 'function' ? t(req) : t);
    const base: AuthorizationInput = { caller, target, method, path: parsed.path, query: parsed.query };
    const input = opts.buildInput === undefined ? base : opts.buildInput({ ...base, req, url });
    const decision = opts.engine.evaluate(opts.entrypoint, input);
    const { allow, reason } = interpret(decision.result);
    if (allow) return { kind: 'allow', decisionId: decision.id, input };
    let why = reason;
    if (why === undefined && opts.reasonEntrypoint !== undefined) {
      const r = opts.engine.evaluate(opts.reasonEntrypoint, input).result;
      if (typeof r === 'string') why = r;
    }
    return { kind: 'deny', decisionId: decision.id, reason: why ?? DEFAULT_DENY_REASON, input };
  } catch (err) {
    const error =
      err instanceof IdentityError
        ? err
        : new IdentityError('policy-evaluation-failed', `authorization failed: ${describeThrown(err)}`, {
            cause: err,
          });
    return { kind: 'error', error };
  }
}

/** Status code and JSON body for a refused request. */
export interface Refusal {
  /** HTTP status code. */
  readonly status: number;
  /** JSON response body. */
  readonly body: Readonly<Record<string, unknown>>;
}

/** Maps a non-allow outcome to the response sent; `undefined` for `allow`. */
export function refusalFor<Req>(
  opts: AuthorizationOptions<Req>,
  outcome: AuthorizationOutcome,
): Refusal | undefined {
  switch (outcome.kind) {
    case 'allow':
      return undefined;
    case 'deny':
      return {
        status: 403,
        body: {
          error: 'forbidden',
          reason: opts.exposeReason === false ? DEFAULT_DENY_REASON : outcome.reason,
          decision_id: outcome.decisionId,
        },
      };
    case 'unauthenticated':
      return { status: 401, body: { error: 'unauthenticated' } };
    case 'bad-request':
      return { status: 400, body: { error: 'bad request', reason: outcome.error.message } };
    case 'error':
      return { status: opts.failureStatus ?? 500, body: { error: 'authorization failed' } };
  }
}

function report<Req>(opts: AuthorizationOptions<Req>, outcome: AuthorizationOutcome, req: Req): void {
  try {
    opts.onDecision?.(outcome, req);
  } catch {
    // An audit hook must not change the response.
  }
}

async function decide<Req>(
  opts: AuthorizationOptions<Req>,
  req: Req,
  method: string,
  url: string,
): Promise<Refusal | undefined> {
  const outcome = await authorizeRequest(opts, req, method, url);
  report(opts, outcome, req);
  return refusalFor(opts, outcome);
}

function sendNode(res: ServerResponse, refusal: Refusal): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(refusal.body);
  res.statusCode = refusal.status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('cache-control', 'no-store');
  res.end(body);
}

/**
 * A guard for node:http handlers: resolves `true` when the request is allowed, otherwise writes
 * the refusal (403 deny, 401 bad credentials, 400 ambiguous path, 500 engine failure) and
 * resolves `false`.
 *
 * @example
 * ```ts
 * const guard = httpAuthorization({ engine, entrypoint: 'authz/decision', getCaller: (req) => peerId(req) });
 * http.createServer(async (req, res) => {
 *   if (!(await guard(req, res))) return;
 *   res.end('ok');
 * });
 * ```
 */
export function httpAuthorization<Req extends IncomingMessage = IncomingMessage>(
  opts: AuthorizationOptions<Req>,
): (req: Req, res: ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    const refusal = await decide(opts, req, req.method ?? 'GET', req.url ?? '/');
    if (refusal === undefined) return true;
    sendNode(res, refusal);
    return false;
  };
}

/** Wraps a node:http request listener so that it only runs for allowed requests. */
export function withAuthorization<Req extends IncomingMessage = IncomingMessage>(
  opts: AuthorizationOptions<Req>,
  handler: (req: Req, res: ServerResponse) => unknown,
): RequestListener {
  const guard = httpAuthorization(opts);
  return (req, res) => {
    guard(req as Req, res).then(
      (ok) => (ok ? handler(req as Req, res) : undefined),
      (err: unknown) => {
        // Not reachable in practice (the guard catches everything); still fail closed.
        sendNode(res, { status: opts.failureStatus ?? 500, body: { error: 'authorization failed' } });
        void err;
      },
    );
  };
}

/** The parts of an Express 5 request the middleware reads. */
export interface ExpressLikeRequest {
  /** HTTP method. */
  readonly method: string;
  /** Request target relative to the router's mount point. */
  readonly url: string;
  /** The full request target (preferred when present). */
  readonly originalUrl?: string | undefined;
}

/**
 * Express 5 middleware: calls `next()` for allowed requests and answers the others itself
 * (see {@link httpAuthorization} for the status codes).
 *
 * @example
 * ```ts
 * app.use(expressAuthorization({ engine, entrypoint: 'authz/decision', getCaller: (req) => req.spiffeId }));
 * ```
 */
export function expressAuthorization<Req extends ExpressLikeRequest = ExpressLikeRequest>(
  opts: AuthorizationOptions<Req>,
): (req: Req, res: ServerResponse, next: (err?: unknown) => void) => void {
  return (req, res, next) => {
    decide(opts, req, req.method, req.originalUrl ?? req.url).then(
      (refusal) => (refusal === undefined ? next() : sendNode(res, refusal)),
      (err: unknown) => next(err),
    );
  };
}

/** The parts of a Fastify 5 request the hook reads. */
export interface FastifyLikeRequest {
  /** HTTP method. */
  readonly method: string;
  /** The raw request target. */
  readonly url: string;
}

/** The parts of a Fastify 5 reply the hook uses. */
export interface FastifyLikeReply {
  /** Sets the status code. */
  code(statusCode: number): FastifyLikeReply;
  /** Sets a response header. */
  header(key: string, value: string): FastifyLikeReply;
  /** Sends the (JSON) payload. */
  send(payload?: unknown): FastifyLikeReply;
}

/**
 * A Fastify 5 `onRequest` (or `preHandler`) hook: allowed requests continue, the others are
 * answered by the hook (see {@link httpAuthorization} for the status codes).
 *
 * @example
 * ```ts
 * app.addHook('onRequest', fastifyAuthorization({ engine, entrypoint: 'authz/decision', getCaller }));
 * ```
 */
export function fastifyAuthorization<
  Req extends FastifyLikeRequest = FastifyLikeRequest,
  Reply extends FastifyLikeReply = FastifyLikeReply,
>(opts: AuthorizationOptions<Req>): (request: Req, reply: Reply) => Promise<Reply | undefined> {
  return async (request, reply) => {
    const refusal = await decide(opts, request, request.method, request.url);
    if (refusal === undefined) return undefined;
    reply.code(refusal.status).header('cache-control', 'no-store').send(refusal.body);
    return reply;
  };
}
