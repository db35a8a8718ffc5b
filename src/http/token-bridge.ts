/**
 * The token bridge: a backend fetches a JWT-SVID for an agent identity and a target service
 * audience and hands it out as `{ token, expires_in, token_type: "Bearer" }`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { IdentityError } from '../errors/index.js';
import type { Logger } from '../observability/index.js';
import { describeTachikomaId, SpiffeId, type SpiffeIdMatcher } from '../spiffeid/index.js';
import type { JwtSvid } from '../svid/index.js';

/** The token response of {@link TokenBridge.issue} (the RFC 6749 §5.1 field names). */
export interface TokenResponse {
  /** The JWT-SVID (compact JWS). A bearer credential: never log it. */
  readonly token: string;
  /** Seconds until the token expires (whole seconds, rounded down, at least 1). */
  readonly expires_in: number;
  /** Always `Bearer`. */
  readonly token_type: 'Bearer';
}

/**
 * What the bridge fetches tokens from: `JwtSource` (cached, recommended) or `WorkloadAPIClient`
 * from `@tachikoma/identity/workload`.
 */
export interface JwtSvidFetcher {
  /**
   * Fetches a JWT-SVID.
   *
   * @param params - the audience, the subject (one of this workload's identities) and a deadline.
   */
  fetchJwtSvid(params: {
    audience: string | readonly string[];
    subject?: string | undefined;
    timeoutMs?: number | undefined;
  }): Promise<JwtSvid>;
}

/** Options of {@link TokenBridge}. */
export interface TokenBridgeOptions {
  /** Where tokens come from (a `JwtSource`). */
  source: JwtSvidFetcher;
  /**
   * The audiences tokens may be issued for: SPIFFE IDs of target services, e.g.
   * `spiffe://example.org/service/teg-core`. Mandatory and non-empty; any other audience is refused.
   */
  audiences: readonly (string | SpiffeId)[];
  /**
   * Which subjects tokens may be issued for. Default: Tachikoma agent IDs
   * (`spiffe://<td>/agent/<id>`) in the trust domains of `audiences`.
   */
  subjects?: SpiffeIdMatcher | undefined;
  /** Deadline of one fetch from the Workload API, in ms. Default 10 000. */
  timeoutMs?: number | undefined;
  /** Refuse to hand out a token with fewer seconds left than this. Default 1. */
  minRemainingSec?: number | undefined;
  /** Receives a line per issued or refused token (never the token). Default silent. */
  logger?: Logger | undefined;
  /** The clock, for tests. */
  now?: (() => Date) | undefined;
}

/** Options of {@link TokenBridge.handler}. */
export interface TokenBridgeHandlerOptions<Req extends IncomingMessage = IncomingMessage> {
  /**
   * The authenticated caller whose identity the token is for (e.g. the mTLS peer's SPIFFE ID),
   * or `undefined` when the request is not authenticated (answered 401). Never read the subject
   * from the request body: a caller would mint tokens for anyone.
   */
  getSubject: (req: Req) => SpiffeId | string | undefined;
  /** The audience when the body names none. Default: none (the body must name one). */
  defaultAudience?: string | SpiffeId | undefined;
  /** Largest request body accepted, in bytes. Default 4096. */
  maxBodyBytes?: number | undefined;
  /** How long to wait for the request body, in ms. Default 10 000. */
  bodyTimeoutMs?: number | undefined;
}

/** A failure of {@link TokenBridge.issue}, with the HTTP status the handler answers it with. */
export interface TokenBridgeFailure {
  /** HTTP status. */
  readonly status: 400 | 401 | 403 | 405 | 413 | 415 | 503;
  /** OAuth-style error: `invalid_request`, `invalid_target`, `access_denied`, ... */
  readonly error: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const STATUS: Readonly<Record<string, TokenBridgeFailure>> = {
  'auth-invalid-subject': { status: 400, error: 'invalid_request' },
  'auth-subject-not-allowed': { status: 403, error: 'access_denied' },
  'auth-audience-not-allowed': { status: 400, error: 'invalid_target' },
  'auth-invalid-request': { status: 400, error: 'invalid_request' },
  'auth-unauthenticated': { status: 401, error: 'unauthorized' },
  'auth-method-not-allowed': { status: 405, error: 'invalid_request' },
  'auth-body-too-large': { status: 413, error: 'invalid_request' },
  'auth-unsupported-media-type': { status: 415, error: 'invalid_request' },
};

function bridgeError(code: string, detail: string, cause?: unknown): IdentityError {
  return new IdentityError(code, detail, cause === undefined ? undefined : { cause });
}

function invalidOption(detail: string): never {
  throw bridgeError('auth-invalid-option', detail);
}

/** The status and OAuth error a bridge failure is answered with. */
export function tokenBridgeFailure(err: IdentityError): TokenBridgeFailure {
  return STATUS[err.code] ?? { status: 503, error: 'temporarily_unavailable' };
}

function toId(value: unknown, code: string, what: string): SpiffeId {
  if (value instanceof SpiffeId) return value;
  if (typeof value !== 'string') throw bridgeError(code, `${what} must be a SPIFFE ID`);
  try {
    return SpiffeId.parse(value);
  } catch (err) {
    throw bridgeError(code, `${what} is not a SPIFFE ID: ${(err as IdentityError).code}`, err);
  }
}

/**
 * Issues JWT-SVIDs for agent identities to a target service audience, for a backend that calls
 * services on behalf of agents (or hands agents their tokens).
 *
 * Safe by construction: only audiences on the allow-list, only subjects the matcher accepts
 * (default: agent IDs of the audiences' trust domains), the token returned by the Workload API
 * is checked to name the requested subject and audience, a token with less than
 * `minRemainingSec` left is never handed out, and every fetch has a deadline. The subject must
 * be one of this workload's identities at the SPIRE agent (an entry for the agent ID whose
 * selectors match the backend), or the fetch fails with `workload-no-identity`.
 *
 * @example
 * ```ts
 * const bridge = new TokenBridge({ source: jwtSource, audiences: ['spiffe://example.org/service/teg-core'] });
 * const t = await bridge.issue('spiffe://example.org/agent/a1', 'spiffe://example.org/service/teg-core');
 * // { token: 'eyJ…', expires_in: 299, token_type: 'Bearer' }
 * ```
 */
export class TokenBridge {
  readonly #source: JwtSvidFetcher;
  readonly #audiences: ReadonlySet<string>;
  readonly #subjects: SpiffeIdMatcher;
  readonly #timeoutMs: number;
  readonly #minRemainingSec: number;
  readonly #logger: Logger | undefined;
  readonly #now: () => Date;

  /**
   * @param opts - source, allowed audiences and subjects, deadline.
   * @throws IdentityError `auth-invalid-option`.
   */
  constructor(opts: TokenBridgeOptions) {
    if (typeof opts !== 'object' || opts === null) invalidOption('options must be an object');
    if (typeof opts.source?.fetchJwtSvid !== 'function') {
      invalidOption('source must have fetchJwtSvid() (a JwtSource or WorkloadAPIClient)');
    }
    if (!Array.isArray(opts.audiences) || opts.audiences.length === 0) {
      invalidOption('audiences must be a non-empty list of SPIFFE IDs');
    }
    const audiences = opts.audiences.map((a) => toId(a, 'auth-invalid-option', 'every audience'));
    for (const a of audiences) {
      if (a.isRoot()) invalidOption(`audience ${a} is a trust domain ID; name a service`);
    }
    const tds = new Set(audiences.map((a) => a.trustDomain.name));
    if (opts.subjects !== undefined && typeof opts.subjects !== 'function') {
      invalidOption('subjects must be a SpiffeIdMatcher (a function of a SpiffeId)');
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (
      typeof timeoutMs !== 'number' ||
      !Number.isFinite(timeoutMs) ||
      timeoutMs <= 0 ||
      timeoutMs > 300_000
    ) {
      invalidOption('timeoutMs must be a number of ms in (0, 300000]');
    }
    const minRemaining = opts.minRemainingSec ?? 1;
    if (typeof minRemaining !== 'number' || !Number.isFinite(minRemaining) || minRemaining < 1) {
      invalidOption('minRemainingSec must be a number of seconds ≥ 1');
    }
    if (opts.now !== undefined && typeof opts.now !== 'function') invalidOption('now must be a function');
    this.#source = opts.source;
    this.#audiences = new Set(audiences.map(String));
    this.#subjects =
      opts.subjects ?? ((id) => describeTachikomaId(id)?.kind === 'agent' && tds.has(id.trustDomain.name));
    this.#timeoutMs = timeoutMs;
    this.#minRemainingSec = minRemaining;
    this.#logger = opts.logger;
    this.#now = opts.now ?? (() => new Date());
  }

  /** The audiences tokens may be issued for. */
  get audiences(): readonly string[] {
    return [...this.#audiences];
  }

  /**
   * Fetches a JWT-SVID for `subject` with audience `audience`.
   *
   * @param subject - the agent identity (SPIFFE ID).
   * @param audience - the target service's SPIFFE ID; must be on the allow-list.
   * @throws IdentityError `auth-invalid-subject`, `auth-subject-not-allowed`,
   *   `auth-audience-not-allowed`, `auth-token-unavailable` (the Workload API failed; its error
   *   in `cause`), `auth-token-mismatch` (the agent returned a token for another subject or
   *   audience), `auth-token-expiring`.
   */
  async issue(subject: SpiffeId | string, audience: SpiffeId | string): Promise<TokenResponse> {
    const sub = toId(subject, 'auth-invalid-subject', 'the subject');
    let aud: string;
    try {
      aud = toId(audience, 'auth-audience-not-allowed', 'the audience').toString();
    } catch (err) {
      this.#refused(sub, String(audience).slice(0, 256), err as IdentityError);
      throw err;
    }
    if (!this.#audiences.has(aud)) {
      const e = bridgeError(
        'auth-audience-not-allowed',
        `tokens are not issued for audience ${aud}; allowed: ${[...this.#audiences].join(', ')}`,
      );
      this.#refused(sub, aud, e);
      throw e;
    }
    let allowed = false;
    try {
      allowed = this.#subjects(sub) === true;
    } catch {
      allowed = false; // a throwing matcher refuses
    }
    if (!allowed) {
      const e = bridgeError('auth-subject-not-allowed', `tokens are not issued for subject ${sub}`);
      this.#refused(sub, aud, e);
      throw e;
    }
    let svid: JwtSvid;
    try {
      svid = await this.#source.fetchJwtSvid({
        audience: aud,
        subject: sub.toString(),
        timeoutMs: this.#timeoutMs,
      });
    } catch (err) {
      const code = err instanceof IdentityError ? err.code : 'unknown';
      const e = bridgeError(
        'auth-token-unavailable',
        `no JWT-SVID for ${sub} (audience ${aud}) from the Workload API: ${code}`,
        err,
      );
      this.#refused(sub, aud, e);
      throw e;
    }
    // Exactly the requested audience: a token also naming another audience would let the
    // caller present it to a service that is not on the allow-list.
    if (!svid.spiffeId.equals(sub) || svid.audience.length !== 1 || svid.audience[0] !== aud) {
      const e = bridgeError(
        'auth-token-mismatch',
        `the Workload API returned a token for ${svid.spiffeId} (audience ${svid.audience.join(', ')}), not ${sub} (audience ${aud})`,
      );
      this.#refused(sub, aud, e);
      throw e;
    }
    const expiresIn = Math.floor((svid.expiresAt.getTime() - this.#now().getTime()) / 1000);
    if (expiresIn < this.#minRemainingSec) {
      const e = bridgeError(
        'auth-token-expiring',
        `the JWT-SVID for ${sub} has ${Math.max(0, expiresIn)} s left; at least ${this.#minRemainingSec} s are required`,
      );
      this.#refused(sub, aud, e);
      throw e;
    }
    this.#logger?.info(
      { event: 'token_issued', subject: sub.toString(), audience: aud, expires_in: expiresIn },
      'token_issued',
    );
    return Object.freeze({ token: svid.token, expires_in: expiresIn, token_type: 'Bearer' as const });
  }

  #refused(subject: SpiffeId, audience: string, err: IdentityError): void {
    this.#logger?.warn(
      { event: 'token_refused', subject: subject.toString(), audience, reason: err.code },
      'token_refused',
    );
  }

  /**
   * A node:http handler serving the bridge (e.g. at `POST /api/v1/teg/token`): the subject is the
   * authenticated caller (`getSubject`), the body is optional JSON `{ "audience": "<SPIFFE ID>" }`.
   * Answers 200 `{ token, expires_in, token_type }` with `cache-control: no-store`; refusals are
   * JSON `{ error, error_description }`: 401 unauthenticated, 400 `invalid_request`/`invalid_target`,
   * 403 `access_denied`, 405, 413, 415, 503 `temporarily_unavailable`.
   *
   * @param opts - how to find the subject, the default audience and body limits.
   */
  handler<Req extends IncomingMessage = IncomingMessage>(
    opts: TokenBridgeHandlerOptions<Req>,
  ): (req: Req, res: ServerResponse) => Promise<void> {
    if (typeof opts?.getSubject !== 'function') invalidOption('getSubject must be a function');
    const maxBody = opts.maxBodyBytes ?? 4096;
    if (!Number.isInteger(maxBody) || maxBody < 2 || maxBody > 1024 * 1024) {
      invalidOption('maxBodyBytes must be an integer in [2, 1048576]');
    }
    const bodyTimeoutMs = opts.bodyTimeoutMs ?? 10_000;
    if (typeof bodyTimeoutMs !== 'number' || !Number.isFinite(bodyTimeoutMs) || bodyTimeoutMs <= 0) {
      invalidOption('bodyTimeoutMs must be a positive number of ms');
    }
    const fallback =
      opts.defaultAudience === undefined
        ? undefined
        : toId(opts.defaultAudience, 'auth-invalid-option', 'defaultAudience').toString();
    return async (req, res) => {
      try {
        if (req.method !== 'POST') {
          res.setHeader('allow', 'POST');
          throw bridgeError('auth-method-not-allowed', 'the token endpoint only accepts POST');
        }
        let subject: SpiffeId | string | undefined;
        try {
          subject = opts.getSubject(req);
        } catch (err) {
          throw bridgeError('auth-unauthenticated', 'the caller could not be authenticated', err);
        }
        if (subject === undefined)
          throw bridgeError('auth-unauthenticated', 'the caller is not authenticated');
        const body = await readJsonBody(req, maxBody, bodyTimeoutMs);
        const audience = body['audience'] ?? fallback;
        if (audience === undefined)
          throw bridgeError('auth-invalid-request', 'the body must name an audience');
        if (typeof audience !== 'string')
          throw bridgeError('auth-invalid-request', 'audience must be a string');
        sendJson(res, 200, await this.issue(subject, audience));
      } catch (err) {
        const e =
          err instanceof IdentityError
            ? err
            : bridgeError(
                'auth-token-unavailable',
                `the token could not be issued: ${(err as Error)?.message}`,
                err,
              );
        const f = tokenBridgeFailure(e);
        if (f.status === 503) res.setHeader('retry-after', '1');
        sendJson(res, f.status, { error: f.error, error_description: e.code });
      }
    };
  }
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.setHeader('cache-control', 'no-store');
  res.setHeader('pragma', 'no-cache');
  res.end(text);
}

/** Reads a small JSON object body: empty means `{}`; only `audience` is allowed in it. */
function readJsonBody(
  req: IncomingMessage,
  maxBytes: number,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? '');
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    return Promise.reject(bridgeError('auth-body-too-large', `the body is larger than ${maxBytes} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: IdentityError | undefined, value?: Record<string, unknown>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      if (err) {
        req.resume(); // drain, so keep-alive can continue or the socket closes cleanly
        reject(err);
      } else resolve(value!);
    };
    const timer = setTimeout(
      () => finish(bridgeError('auth-invalid-request', `the body did not arrive within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > maxBytes) {
        finish(bridgeError('auth-body-too-large', `the body is larger than ${maxBytes} bytes`));
        return;
      }
      chunks.push(c);
    };
    const onEnd = (): void => {
      const text = Buffer.concat(chunks, size).toString('utf8');
      if (text.trim() === '') {
        finish(undefined, {});
        return;
      }
      if (!/^application\/json(\s*;.*)?$/i.test(type)) {
        finish(bridgeError('auth-unsupported-media-type', 'the body must be application/json'));
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        finish(bridgeError('auth-invalid-request', 'the body is not valid JSON'));
        return;
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        finish(bridgeError('auth-invalid-request', 'the body must be a JSON object'));
        return;
      }
      const unknown = Object.keys(parsed).filter((k) => k !== 'audience');
      if (unknown.length > 0) {
        finish(
          bridgeError(
            'auth-invalid-request',
            `unknown member ${JSON.stringify(unknown[0]!.slice(0, 32))} in the body (only "audience")`,
          ),
        );
        return;
      }
      finish(undefined, parsed as Record<string, unknown>);
    };
    const onError = (): void =>
      finish(bridgeError('auth-invalid-request', 'the request body could not be read'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
