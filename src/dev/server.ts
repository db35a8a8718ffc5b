/**
 * The dev Workload API server: a SPIFFE Workload API in this process, on a unix socket, with its
 * own CA and JWT keys. For development and tests only: it attests nobody (see the class docs).
 */
import { type JsonWebKey, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { SignJWT } from 'jose';
import { BundleSet, JwtBundle, X509Bundle } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import {
  jsonToStruct,
  loadWorkloadService,
  type RawJwtBundlesResponse,
  type RawJwtSvidRequest,
  type RawJwtSvidResponse,
  type RawValidateJwtSvidRequest,
  type RawValidateJwtSvidResponse,
  type RawX509BundlesResponse,
  type RawX509SvidResponse,
  WORKLOAD_HEADER,
} from '../internal/grpc-workload.js';
import { SpiffeId, TrustDomain } from '../spiffeid/index.js';
import { validateJwtSvid } from '../svid/index.js';
import {
  createAuthority,
  type DevAuthority,
  generateKeyPair,
  type IssuedSvid,
  issueX509Svid,
  type KeyPair,
} from './pki.js';

/** An identity the dev server hands out. */
export interface DevIdentity {
  /** The SPIFFE ID; must be in the server's trust domain and have a path. */
  spiffeId: string;
  /** Optional hint (at most 1024 bytes) that tells several identities apart. */
  hint?: string | undefined;
  /**
   * Serve this identity only to processes of this uid, on the socket {@link DevWorkloadServer.addressFor}
   * returns for it (owned by that uid, mode 0600). Identities without a uid are served on the main socket.
   */
  uid?: number | undefined;
  /** X509-SVID lifetime in ms; default the server's `x509SvidTtlMs`. */
  x509SvidTtlMs?: number | undefined;
  /** JWT-SVID lifetime in ms; default the server's `jwtSvidTtlMs`. */
  jwtSvidTtlMs?: number | undefined;
  /** DNS SANs to add to the X509-SVID. */
  dnsNames?: readonly string[] | undefined;
}

/** Bundles of a federated trust domain. */
export interface DevFederatedBundle {
  /** X.509 authorities of that trust domain. */
  x509?: X509Bundle | undefined;
  /** JWT keys of that trust domain. */
  jwt?: JwtBundle | undefined;
}

/** Options of {@link DevWorkloadServer.start}. */
export interface DevServerOptions {
  /** Trust domain name; default `example.org`. */
  trustDomain?: string | undefined;
  /**
   * Socket path; default `api.sock` in a fresh temporary directory (removed on close). An existing
   * socket nobody listens on is replaced; anything else at that path is an error.
   */
  socketPath?: string | undefined;
  /** Identities to serve (SPIFFE ID strings or full descriptions); order is the agent order. */
  identities?: readonly (DevIdentity | string)[] | undefined;
  /** Default X509-SVID lifetime in ms; default 1 hour. */
  x509SvidTtlMs?: number | undefined;
  /** Default JWT-SVID lifetime in ms; default 5 minutes. */
  jwtSvidTtlMs?: number | undefined;
  /** CA lifetime in ms; default 24 hours. SVIDs never outlive their CA. */
  caTtlMs?: number | undefined;
  /**
   * When X509-SVIDs are re-issued by themselves: `'half-life'` (default, as SPIRE does), a fixed
   * period in ms, or `false` (only on demand with {@link DevWorkloadServer.rotateX509Svids}).
   */
  x509Rotation?: 'half-life' | number | false | undefined;
  /** Federated trust domains and their bundles, by trust domain name. */
  federatedBundles?: Readonly<Record<string, DevFederatedBundle>> | undefined;
}

/** The RPCs of the Workload API, for faults and counters. */
export type DevRpc =
  | 'FetchX509SVID'
  | 'FetchX509Bundles'
  | 'FetchJWTSVID'
  | 'FetchJWTBundles'
  | 'ValidateJWTSVID';

/** What every fault has: how many calls it applies to, and which RPC. */
export interface DevFaultScope {
  /** How many calls it applies to; default 1, `Infinity` until {@link DevWorkloadServer.clearFaults}. */
  calls?: number | undefined;
  /** The RPC it applies to; default every RPC. */
  rpc?: DevRpc | undefined;
}

/** The next calls fail with `UNAVAILABLE`. */
export interface DevUnavailableFault extends DevFaultScope {
  /** Discriminant. */
  type: 'unavailable';
  /** Status details sent; default a fixed text. */
  message?: string | undefined;
}

/** The next calls fail with `PERMISSION_DENIED` "no identity issued". */
export interface DevPermissionDeniedFault extends DevFaultScope {
  /** Discriminant. */
  type: 'permission-denied';
}

/** The next calls get a corrupt certificate, bundle or token as their (first) answer. */
export interface DevMalformedFault extends DevFaultScope {
  /** Discriminant. */
  type: 'malformed';
}

/** The next calls get their (first) answer late; a stream is open meanwhile. */
export interface DevSlowFault extends DevFaultScope {
  /** Discriminant. */
  type: 'slow';
  /** How late, in ms. */
  delayMs: number;
}

/** The next calls fail with any non-OK gRPC status. */
export interface DevStatusFault extends DevFaultScope {
  /** Discriminant. */
  type: 'status';
  /** gRPC status code, 1..16 (e.g. 3 `INVALID_ARGUMENT`, 12 `UNIMPLEMENTED`). */
  code: number;
  /** Status details sent; default a fixed text. */
  message?: string | undefined;
}

/**
 * A fault for the next calls of the dev server (see {@link DevWorkloadServer.injectFault}).
 */
export type DevFault =
  | DevUnavailableFault
  | DevPermissionDeniedFault
  | DevMalformedFault
  | DevSlowFault
  | DevStatusFault;

/** How {@link DevWorkloadServer.cutStreams} ends the open streams. */
export type DevStreamEnd = 'unavailable' | 'permission-denied' | 'internal' | 'ok';

/** An X.509 authority of the dev server, as {@link DevWorkloadServer.rotateX509Authority} reports it. */
export interface DevAuthorityInfo {
  /** Serial number (hex) of the CA certificate. */
  readonly serial: string;
  /** The CA certificate, DER. */
  readonly der: Uint8Array;
}

const DEFAULT_TD = 'example.org';
const HOUR = 3_600_000;
const MAX_TTL = 10 * 365 * 24 * HOUR;

interface JwtKey {
  kid: string;
  keys: KeyPair;
}

interface IdentityState {
  readonly id: DevIdentity & { x509SvidTtlMs: number; jwtSvidTtlMs: number };
  readonly spiffeId: SpiffeId;
  svid: IssuedSvid;
  timer: NodeJS.Timeout | undefined;
}

type AnyStream = grpc.ServerWritableStream<unknown, unknown>;

interface OpenStream {
  rpc: 'FetchX509SVID' | 'FetchX509Bundles' | 'FetchJWTBundles';
  uid: number | undefined;
  call: AnyStream;
  /** False while a slow fault holds the first answer back: pushes wait for it. */
  ready: boolean;
}

interface ServerOpts {
  x509SvidTtlMs: number;
  jwtSvidTtlMs: number;
  caTtlMs: number;
  rotation: 'half-life' | number | false;
}

interface ActiveFault {
  fault: DevFault;
  remaining: number;
}

function devError(code: string, detail: string, cause?: unknown): IdentityError {
  return new IdentityError(code, detail, cause === undefined ? undefined : { cause });
}

function checkTtl(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 1000 || v > MAX_TTL) {
    throw devError('dev-invalid-option', `${name} must be a number of ms in [1000, ${MAX_TTL}]`);
  }
  return v;
}

function statusError(code: grpc.status, details: string): Partial<grpc.StatusObject> {
  return { code, details, metadata: new grpc.Metadata() };
}

function keyOf(spiffeId: string, hint: string | undefined): string {
  return `${spiffeId}\u0000${hint ?? ''}`;
}

/** Tries to connect to a unix socket: true when something listens there. */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * An in-process SPIFFE Workload API server for development and tests. **Never use it in
 * production**: it does not attest callers, keeps its CA key in memory, and anyone who can open
 * its socket gets its identities.
 *
 * What it does: serves every Workload API RPC on a unix socket (`workload.spiffe.io: true` is
 * enforced with `InvalidArgument`, as SPIRE does), mints X509-SVIDs (ECDSA P-256) under its own
 * CA and JWT-SVIDs (ES256) with its own keys, re-issues SVIDs at half their lifetime (or on a
 * schedule, or on demand), rotates its CA and JWT keys on demand, serves federated bundles,
 * validates JWT-SVIDs, and injects faults on demand.
 *
 * Per-caller identities: grpc-js does not expose the peer's credentials (SO_PEERCRED), so the
 * server cannot read a caller's uid. Instead, identities bound to a uid are served on a separate
 * socket per uid, owned by that uid with mode 0600: the kernel lets only that uid (and root)
 * connect. Use {@link DevWorkloadServer.addressFor} to get it.
 *
 * @example
 * ```ts
 * await using server = await DevWorkloadServer.start({ identities: ['spiffe://example.org/web'] });
 * await using source = await X509Source.create({ address: server.address });
 * source.getX509Svid().spiffeId.toString(); // 'spiffe://example.org/web'
 * ```
 */
export class DevWorkloadServer implements AsyncDisposable {
  /** The trust domain of the server's CA and JWT keys. */
  readonly trustDomain: TrustDomain;
  /** The main socket path. */
  readonly socketPath: string;
  /** One grpc.Server per socket: the main one (uid undefined) and one per uid. */
  readonly #servers = new Map<number | undefined, grpc.Server>();
  readonly #ownedDir: string | undefined;
  readonly #opts: ServerOpts;
  readonly #identities = new Map<string, IdentityState>();
  readonly #streams = new Set<OpenStream>();
  readonly #uidSockets = new Map<number, string>();
  readonly #federated = new Map<string, DevFederatedBundle>();
  readonly #calls = new Map<DevRpc, number>();
  #faults: ActiveFault[] = [];
  #x509Authorities: DevAuthority[] = [];
  #jwtKeys: JwtKey[] = [];
  #caSerial = 0;
  #closed = false;

  private constructor(td: TrustDomain, socketPath: string, ownedDir: string | undefined, opts: ServerOpts) {
    this.trustDomain = td;
    this.socketPath = socketPath;
    this.#ownedDir = ownedDir;
    this.#opts = opts;
    this.#x509Authorities = [createAuthority(td.idString(), ++this.#caSerial, opts.caTtlMs, Date.now())];
    this.#jwtKeys = [{ kid: randomBytes(16).toString('base64url'), keys: generateKeyPair() }];
  }

  /**
   * Starts a server and resolves once it listens.
   *
   * @param options - trust domain, socket, identities, lifetimes, rotation, federated bundles.
   * @throws IdentityError `dev-invalid-option`, `dev-socket-in-use`, `dev-start-failed`.
   */
  static async start(options: DevServerOptions = {}): Promise<DevWorkloadServer> {
    let td: TrustDomain;
    try {
      td = TrustDomain.parse(options.trustDomain ?? DEFAULT_TD);
    } catch (err) {
      throw devError('dev-invalid-option', `trustDomain is invalid: ${(err as Error).message}`, err);
    }
    const rotation = options.x509Rotation ?? 'half-life';
    if (
      rotation !== 'half-life' &&
      rotation !== false &&
      !(typeof rotation === 'number' && rotation >= 100 && Number.isFinite(rotation))
    ) {
      throw devError(
        'dev-invalid-option',
        "x509Rotation must be 'half-life', false, or a period of at least 100 ms",
      );
    }
    const opts = {
      x509SvidTtlMs: checkTtl('x509SvidTtlMs', options.x509SvidTtlMs, HOUR),
      jwtSvidTtlMs: checkTtl('jwtSvidTtlMs', options.jwtSvidTtlMs, 5 * 60_000),
      caTtlMs: checkTtl('caTtlMs', options.caTtlMs, 24 * HOUR),
      rotation,
    };
    let socketPath = options.socketPath;
    let ownedDir: string | undefined;
    if (socketPath === undefined) {
      ownedDir = mkdtempSync(join(tmpdir(), 'tk-dev-'));
      chmodSync(ownedDir, 0o755);
      socketPath = join(ownedDir, 'api.sock');
    } else {
      if (typeof socketPath !== 'string' || !socketPath.startsWith('/')) {
        throw devError('dev-invalid-option', 'socketPath must be an absolute path');
      }
      if (Buffer.byteLength(socketPath) > 107)
        throw devError('dev-invalid-option', 'socketPath is longer than 107 bytes');
      await DevWorkloadServer.#clearStaleSocket(socketPath);
    }
    const server = new DevWorkloadServer(td, socketPath, ownedDir, opts);
    try {
      for (const [name, b] of Object.entries(options.federatedBundles ?? {}))
        server.setFederatedBundle(name, b);
      for (const id of options.identities ?? [])
        server.#add(typeof id === 'string' ? { spiffeId: id } : id, false);
      await server.#bind(socketPath, undefined);
      chmodSync(socketPath, 0o777);
      for (const uid of new Set([...server.#identities.values()].map((s) => s.id.uid))) {
        if (uid !== undefined) await server.#ensureUidSocket(uid);
      }
    } catch (err) {
      await server.close();
      if (err instanceof IdentityError) throw err;
      throw devError(
        'dev-start-failed',
        `could not start the dev Workload API server: ${(err as Error).message}`,
        err,
      );
    }
    return server;
  }

  static async #clearStaleSocket(path: string): Promise<void> {
    if (!existsSync(path)) return;
    const st = lstatSync(path);
    if (!st.isSocket()) throw devError('dev-socket-in-use', `${path} exists and is not a socket`);
    if (await socketInUse(path)) throw devError('dev-socket-in-use', `something already listens on ${path}`);
    unlinkSync(path);
  }

  #bind(path: string, uid: number | undefined): Promise<void> {
    const server = new grpc.Server({ 'grpc.max_send_message_length': -1 });
    server.addService(loadWorkloadService().definition, this.#handlers(uid));
    this.#servers.set(uid, server);
    return new Promise((resolve, reject) => {
      server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => {
        if (err) reject(devError('dev-start-failed', `cannot listen on ${path}: ${err.message}`, err));
        else resolve();
      });
    });
  }

  async #ensureUidSocket(uid: number): Promise<string> {
    const existing = this.#uidSockets.get(uid);
    if (existing) return existing;
    const path = join(dirname(this.socketPath), `uid-${uid}.sock`);
    if (Buffer.byteLength(path) > 107)
      throw devError('dev-invalid-option', `the socket path for uid ${uid} is too long`);
    await DevWorkloadServer.#clearStaleSocket(path);
    await this.#bind(path, uid);
    try {
      chmodSync(path, 0o600);
      if (process.getuid?.() !== uid) chownSync(path, uid, uid);
    } catch (err) {
      throw devError(
        'dev-uid-socket-failed',
        `cannot give the socket for uid ${uid} to that uid (${(err as Error).message}); per-uid identities need root, or the server's own uid`,
        err,
      );
    }
    this.#uidSockets.set(uid, path);
    return path;
  }

  /** `unix://` address of the main socket (identities without a uid). */
  get address(): string {
    return `unix://${this.socketPath}`;
  }

  /**
   * `unix://` address of the socket that serves the identities of `uid`.
   *
   * @param uid - a uid some identity was bound to.
   * @throws IdentityError `dev-unknown-identity` when no identity is bound to `uid`.
   */
  addressFor(uid: number): string {
    const path = this.#uidSockets.get(uid);
    if (!path) throw devError('dev-unknown-identity', `no identity is bound to uid ${uid}`);
    return `unix://${path}`;
  }

  /** The current X.509 bundle of the server's trust domain (every authority still published). */
  x509Bundle(): X509Bundle {
    return X509Bundle.fromAuthorities(
      this.trustDomain,
      this.#x509Authorities.map((a) => a.cert.der),
    );
  }

  /** The current JWT bundle of the server's trust domain. */
  jwtBundle(): JwtBundle {
    const keys: Record<string, JsonWebKey> = {};
    for (const k of this.#jwtKeys)
      keys[k.kid] = { ...k.keys.publicKey.export({ format: 'jwk' }), use: 'jwt-svid' };
    return JwtBundle.fromAuthorities(this.trustDomain, keys);
  }

  /** Own and federated bundles, X.509 and JWT, as clients see them. */
  bundleSet(): BundleSet {
    const parts: (X509Bundle | JwtBundle)[] = [this.x509Bundle(), this.jwtBundle()];
    for (const b of this.#federated.values()) {
      if (b.x509) parts.push(b.x509);
      if (b.jwt) parts.push(b.jwt);
    }
    return new BundleSet(...parts);
  }

  /** The serial (hex) of the current X509-SVID of an identity, for tests. */
  serialOf(spiffeId: string, hint?: string | undefined): string {
    return this.#get(spiffeId, hint).svid.serialHex;
  }

  /** How many calls of `rpc` the server has received (faulted ones included). */
  callCount(rpc: DevRpc): number {
    return this.#calls.get(rpc) ?? 0;
  }

  /** How many streams are open now (all sockets). */
  get openStreams(): number {
    return this.#streams.size;
  }

  #get(spiffeId: string, hint: string | undefined): IdentityState {
    const s = this.#identities.get(keyOf(spiffeId, hint));
    if (!s)
      throw devError('dev-unknown-identity', `no identity ${spiffeId}${hint ? ` with hint ${hint}` : ''}`);
    return s;
  }

  #checkOpen(): void {
    if (this.#closed) throw devError('dev-closed', 'the dev Workload API server is closed');
  }

  #add(identity: DevIdentity, push: boolean): void {
    if (typeof identity !== 'object' || identity === null)
      throw devError('dev-invalid-option', 'an identity is a SPIFFE ID or { spiffeId, … }');
    let id: SpiffeId;
    try {
      id = SpiffeId.parse(identity.spiffeId);
    } catch (err) {
      throw devError(
        'dev-invalid-option',
        `identity ${String(identity.spiffeId).slice(0, 200)} is not a SPIFFE ID: ${(err as Error).message}`,
        err,
      );
    }
    if (!id.memberOf(this.trustDomain)) {
      throw devError(
        'dev-invalid-option',
        `identity ${id} is not in the server's trust domain ${this.trustDomain.name}`,
      );
    }
    if (id.path === '') throw devError('dev-invalid-option', `identity ${id} has no path`);
    if (
      identity.hint !== undefined &&
      (typeof identity.hint !== 'string' || Buffer.byteLength(identity.hint) > 1024)
    ) {
      throw devError('dev-invalid-option', 'a hint is a string of at most 1024 bytes');
    }
    if (
      identity.uid !== undefined &&
      !(Number.isInteger(identity.uid) && identity.uid >= 0 && identity.uid < 2 ** 32)
    ) {
      throw devError('dev-invalid-option', 'uid must be a non-negative integer');
    }
    const key = keyOf(id.toString(), identity.hint);
    if (this.#identities.has(key))
      throw devError('dev-invalid-option', `identity ${id} is already configured`);
    const full = {
      ...identity,
      spiffeId: id.toString(),
      x509SvidTtlMs: checkTtl('x509SvidTtlMs', identity.x509SvidTtlMs, this.#opts.x509SvidTtlMs),
      jwtSvidTtlMs: checkTtl('jwtSvidTtlMs', identity.jwtSvidTtlMs, this.#opts.jwtSvidTtlMs),
    };
    const state: IdentityState = { id: full, spiffeId: id, svid: this.#issue(full), timer: undefined };
    this.#identities.set(key, state);
    this.#arm(state);
    if (push) this.#pushAll();
  }

  #issue(id: IdentityState['id']): IssuedSvid {
    const ca = this.#x509Authorities[this.#x509Authorities.length - 1]!;
    return issueX509Svid(ca, id.spiffeId, id.x509SvidTtlMs, Date.now(), id.dnsNames);
  }

  #arm(state: IdentityState): void {
    if (state.timer) clearTimeout(state.timer);
    state.timer = undefined;
    const r = this.#opts.rotation;
    if (r === false || this.#closed) return;
    const delay = r === 'half-life' ? Math.max(100, (state.svid.notAfter.getTime() - Date.now()) / 2) : r;
    state.timer = setTimeout(() => {
      state.timer = undefined;
      if (this.#closed || this.#identities.get(keyOf(state.id.spiffeId, state.id.hint)) !== state) return;
      state.svid = this.#issue(state.id);
      this.#arm(state);
      this.#pushX509();
    }, delay);
    state.timer.unref();
  }

  /**
   * Adds an identity and pushes the new set to open streams.
   *
   * @param identity - a SPIFFE ID or a full description.
   * @throws IdentityError `dev-invalid-option`, `dev-uid-socket-failed`, `dev-closed`.
   */
  async addIdentity(identity: DevIdentity | string): Promise<void> {
    this.#checkOpen();
    const full = typeof identity === 'string' ? { spiffeId: identity } : identity;
    if (full.uid !== undefined) await this.#ensureUidSocket(full.uid);
    this.#add(full, true);
  }

  /**
   * Removes an identity; open streams get the reduced set, or end with `PermissionDenied`
   * (`no identity issued`) when nothing is left for them, as SPIRE does.
   *
   * @param spiffeId - the identity's SPIFFE ID.
   * @param hint - its hint, if it was configured with one.
   */
  removeIdentity(spiffeId: string, hint?: string | undefined): void {
    this.#checkOpen();
    const s = this.#get(spiffeId, hint);
    if (s.timer) clearTimeout(s.timer);
    this.#identities.delete(keyOf(spiffeId, hint));
    this.#pushAll();
  }

  /**
   * Re-issues X509-SVIDs now (all, or one SPIFFE ID's) and pushes them to open streams.
   *
   * @param spiffeId - only this identity (every hint of it); default all.
   * @returns the new serials (hex), in identity order.
   */
  rotateX509Svids(spiffeId?: string | undefined): string[] {
    this.#checkOpen();
    const serials: string[] = [];
    for (const s of this.#identities.values()) {
      if (spiffeId !== undefined && s.id.spiffeId !== spiffeId) continue;
      s.svid = this.#issue(s.id);
      this.#arm(s);
      serials.push(s.svid.serialHex);
    }
    if (spiffeId !== undefined && serials.length === 0)
      throw devError('dev-unknown-identity', `no identity ${spiffeId}`);
    this.#pushX509();
    return serials;
  }

  /**
   * Makes a new CA and re-issues every X509-SVID under it. The previous CA stays in the bundle
   * (so peers holding old SVIDs still verify) until {@link DevWorkloadServer.dropPreviousX509Authorities}.
   *
   * @param opts - `keepPrevious: false` drops the previous authorities at once.
   * @returns the new authority.
   */
  rotateX509Authority(opts: { keepPrevious?: boolean | undefined } = {}): DevAuthorityInfo {
    this.#checkOpen();
    const next = createAuthority(
      this.trustDomain.idString(),
      ++this.#caSerial,
      this.#opts.caTtlMs,
      Date.now(),
    );
    this.#x509Authorities = opts.keepPrevious === false ? [next] : [...this.#x509Authorities, next];
    for (const s of this.#identities.values()) {
      s.svid = this.#issue(s.id);
      this.#arm(s);
    }
    this.#pushAll();
    return { serial: next.cert.serialHex, der: next.cert.der };
  }

  /** Removes every X.509 authority but the current one from the bundle and pushes the change. */
  dropPreviousX509Authorities(): void {
    this.#checkOpen();
    this.#x509Authorities = this.#x509Authorities.slice(-1);
    this.#pushAll();
  }

  /**
   * Makes a new JWT signing key; new JWT-SVIDs use it. The previous key stays in the bundle until
   * {@link DevWorkloadServer.dropPreviousJwtAuthorities}.
   *
   * @param opts - `keepPrevious: false` drops the previous keys at once.
   * @returns the new key ID.
   */
  rotateJwtAuthority(opts: { keepPrevious?: boolean | undefined } = {}): string {
    this.#checkOpen();
    const next: JwtKey = { kid: randomBytes(16).toString('base64url'), keys: generateKeyPair() };
    this.#jwtKeys = opts.keepPrevious === false ? [next] : [...this.#jwtKeys, next];
    this.#pushBundles();
    return next.kid;
  }

  /** Removes every JWT key but the current one from the bundle and pushes the change. */
  dropPreviousJwtAuthorities(): void {
    this.#checkOpen();
    this.#jwtKeys = this.#jwtKeys.slice(-1);
    this.#pushBundles();
  }

  /**
   * Adds or replaces the bundles of a federated trust domain and pushes them.
   *
   * @param trustDomain - the federated trust domain (not the server's own).
   * @param bundles - its X.509 and/or JWT bundle (each must belong to that trust domain).
   */
  setFederatedBundle(trustDomain: string, bundles: DevFederatedBundle): void {
    this.#checkOpen();
    let td: TrustDomain;
    try {
      td = TrustDomain.parse(trustDomain);
    } catch (err) {
      throw devError(
        'dev-invalid-option',
        `federated trust domain ${trustDomain.slice(0, 200)} is invalid`,
        err,
      );
    }
    if (td.equals(this.trustDomain))
      throw devError('dev-invalid-option', 'the own trust domain cannot be federated');
    if (
      bundles.x509 !== undefined &&
      (!(bundles.x509 instanceof X509Bundle) || !bundles.x509.trustDomain.equals(td))
    ) {
      throw devError(
        'dev-invalid-option',
        `the X.509 bundle for ${td.name} must be an X509Bundle of ${td.name}`,
      );
    }
    if (
      bundles.jwt !== undefined &&
      (!(bundles.jwt instanceof JwtBundle) || !bundles.jwt.trustDomain.equals(td))
    ) {
      throw devError('dev-invalid-option', `the JWT bundle for ${td.name} must be a JwtBundle of ${td.name}`);
    }
    this.#federated.set(td.name, { x509: bundles.x509, jwt: bundles.jwt });
    this.#pushAll();
  }

  /**
   * Removes a federated trust domain (a redaction for clients) and pushes the change.
   *
   * @param trustDomain - the federated trust domain.
   */
  removeFederatedBundle(trustDomain: string): void {
    this.#checkOpen();
    this.#federated.delete(TrustDomain.parse(trustDomain).name);
    this.#pushAll();
  }

  /**
   * Mints a JWT-SVID signed by the current key, for any SPIFFE ID of the trust domain (tests use
   * it to make peer tokens).
   *
   * @param spiffeId - the subject.
   * @param audience - one or more audiences.
   * @param opts - lifetime in ms (default the server's `jwtSvidTtlMs`) and extra claims.
   */
  async mintJwtSvid(
    spiffeId: string,
    audience: string | readonly string[],
    opts: { ttlMs?: number | undefined; claims?: Readonly<Record<string, unknown>> | undefined } = {},
  ): Promise<string> {
    const key = this.#jwtKeys[this.#jwtKeys.length - 1]!;
    const now = Math.floor(Date.now() / 1000);
    const ttl = Math.max(1, Math.round((opts.ttlMs ?? this.#opts.jwtSvidTtlMs) / 1000));
    return new SignJWT({
      ...(opts.claims ?? {}),
      aud: typeof audience === 'string' ? [audience] : [...audience],
    })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
      .setSubject(spiffeId)
      .setIssuedAt(now)
      .setExpirationTime(now + ttl)
      .sign(key.keys.privateKey);
  }

  /**
   * Injects a fault for the next calls (see {@link DevFault}).
   *
   * @param fault - what to break, for which RPC and for how many calls.
   */
  injectFault(fault: DevFault): void {
    this.#checkOpen();
    const calls = fault.calls ?? 1;
    if (!(calls >= 1)) throw devError('dev-invalid-option', 'fault.calls must be at least 1');
    if (fault.type === 'status' && !(Number.isInteger(fault.code) && fault.code >= 1 && fault.code <= 16)) {
      throw devError('dev-invalid-option', 'a status fault needs a non-OK gRPC code (1..16)');
    }
    if (fault.type === 'slow' && !(Number.isFinite(fault.delayMs) && fault.delayMs >= 0)) {
      throw devError('dev-invalid-option', 'a slow fault needs delayMs ≥ 0');
    }
    this.#faults.push({ fault, remaining: calls });
  }

  /** Removes every pending fault. */
  clearFaults(): void {
    this.#faults = [];
  }

  /**
   * Ends every open stream now (all RPCs, all sockets) with the given status; clients see a
   * stream cut and reconnect by their retry rules.
   *
   * @param how - status to end with; default `unavailable`.
   */
  cutStreams(how: DevStreamEnd = 'unavailable'): void {
    for (const s of [...this.#streams]) this.#endStream(s, how);
  }

  /**
   * Sends one malformed message (a corrupt certificate, bundle or JWKS) on every open stream of
   * `rpc` (default all streams). Clients must discard it and keep their last good state.
   *
   * @param rpc - which streams.
   */
  sendMalformed(rpc?: 'FetchX509SVID' | 'FetchX509Bundles' | 'FetchJWTBundles' | undefined): void {
    for (const s of [...this.#streams]) {
      if (!s.ready || (rpc !== undefined && s.rpc !== rpc)) continue;
      this.#write(s, this.#malformedFor(s.rpc));
    }
  }

  #endStream(s: OpenStream, how: DevStreamEnd): void {
    this.#streams.delete(s);
    try {
      if (how === 'ok') {
        s.call.end();
      } else {
        const code =
          how === 'permission-denied'
            ? grpc.status.PERMISSION_DENIED
            : how === 'internal'
              ? grpc.status.INTERNAL
              : grpc.status.UNAVAILABLE;
        const details =
          how === 'permission-denied' ? 'no identity issued' : `dev server: stream cut (${how})`;
        s.call.emit('error', statusError(code, details));
      }
    } catch {
      // the stream is already gone
    }
  }

  #write(s: OpenStream, msg: unknown): void {
    try {
      s.call.write(msg);
    } catch {
      this.#streams.delete(s);
    }
  }

  #identitiesFor(uid: number | undefined): IdentityState[] {
    return [...this.#identities.values()].filter((s) => s.id.uid === uid);
  }

  #x509BundleDer(): Buffer {
    return Buffer.concat(this.#x509Authorities.map((a) => a.cert.der));
  }

  #jwksBytes(): Buffer {
    return Buffer.from(this.jwtBundle().marshal());
  }

  #x509Response(uid: number | undefined): RawX509SvidResponse | undefined {
    const ids = this.#identitiesFor(uid);
    if (ids.length === 0) return undefined;
    const bundle = this.#x509BundleDer();
    const federated: Record<string, Uint8Array> = {};
    for (const [name, b] of this.#federated) if (b.x509) federated[`spiffe://${name}`] = b.x509.toDer();
    return {
      svids: ids.map((s) => ({
        spiffe_id: s.id.spiffeId,
        x509_svid: Buffer.from(s.svid.chainDer),
        x509_svid_key: Buffer.from(s.svid.keyDer),
        bundle,
        hint: s.id.hint ?? '',
      })),
      crl: [],
      federated_bundles: federated,
    };
  }

  #x509BundlesResponse(): RawX509BundlesResponse {
    const bundles: Record<string, Uint8Array> = { [this.trustDomain.idString()]: this.#x509BundleDer() };
    for (const [name, b] of this.#federated) if (b.x509) bundles[`spiffe://${name}`] = b.x509.toDer();
    return { crl: [], bundles };
  }

  #jwtBundlesResponse(): RawJwtBundlesResponse {
    const bundles: Record<string, Uint8Array> = { [this.trustDomain.idString()]: this.#jwksBytes() };
    for (const [name, b] of this.#federated)
      if (b.jwt) bundles[`spiffe://${name}`] = Buffer.from(b.jwt.marshal());
    return { bundles };
  }

  #malformedFor(rpc: OpenStream['rpc'] | 'FetchJWTSVID'): unknown {
    const garbage = Buffer.from('this is not DER');
    switch (rpc) {
      case 'FetchX509SVID': {
        const first = [...this.#identities.values()][0];
        return {
          svids: [
            {
              spiffe_id: first?.id.spiffeId ?? `${this.trustDomain.idString()}/malformed`,
              x509_svid: garbage,
              x509_svid_key: garbage,
              bundle: this.#x509BundleDer(),
              hint: '',
            },
          ],
          crl: [],
          federated_bundles: {},
        };
      }
      case 'FetchX509Bundles':
        return { crl: [], bundles: { [this.trustDomain.idString()]: garbage } };
      case 'FetchJWTBundles':
        return { bundles: { [this.trustDomain.idString()]: Buffer.from('{"keys": [') } };
      case 'FetchJWTSVID':
        return {
          svids: [{ spiffe_id: `${this.trustDomain.idString()}/malformed`, svid: 'not.a.jwt', hint: '' }],
        };
    }
  }

  /** The answer for a stream of `rpc` on the socket of `uid`, or undefined for "no identity". */
  #streamMessage(rpc: OpenStream['rpc'], uid: number | undefined): unknown {
    if (this.#identitiesFor(uid).length === 0) return undefined;
    switch (rpc) {
      case 'FetchX509SVID':
        return this.#x509Response(uid);
      case 'FetchX509Bundles':
        return this.#x509BundlesResponse();
      case 'FetchJWTBundles':
        return this.#jwtBundlesResponse();
    }
  }

  #pushX509(): void {
    for (const s of [...this.#streams]) if (s.rpc === 'FetchX509SVID') this.#push(s);
  }

  #pushBundles(): void {
    for (const s of [...this.#streams]) if (s.rpc !== 'FetchX509SVID') this.#push(s);
  }

  #pushAll(): void {
    for (const s of [...this.#streams]) this.#push(s);
  }

  #push(s: OpenStream): void {
    if (!s.ready) return;
    const msg = this.#streamMessage(s.rpc, s.uid);
    if (msg === undefined) this.#endStream(s, 'permission-denied');
    else this.#write(s, msg);
  }

  /** Header check, counters and faults shared by every handler; returns the fault to apply, if any. */
  #admit(rpc: DevRpc, metadata: grpc.Metadata): { error?: Partial<grpc.StatusObject>; fault?: DevFault } {
    this.#calls.set(rpc, (this.#calls.get(rpc) ?? 0) + 1);
    const header = metadata.get(WORKLOAD_HEADER);
    if (header.length !== 1 || header[0] !== 'true') {
      return { error: statusError(grpc.status.INVALID_ARGUMENT, 'security header missing from request') };
    }
    const i = this.#faults.findIndex((f) => f.fault.rpc === undefined || f.fault.rpc === rpc);
    if (i === -1) return {};
    const active = this.#faults[i]!;
    active.remaining--;
    if (active.remaining <= 0) this.#faults.splice(i, 1);
    const f = active.fault;
    if (f.type === 'unavailable')
      return {
        error: statusError(grpc.status.UNAVAILABLE, f.message ?? 'dev server: unavailable (injected)'),
      };
    if (f.type === 'status')
      return { error: statusError(f.code, f.message ?? `dev server: injected status ${f.code}`) };
    if (f.type === 'permission-denied')
      return { error: statusError(grpc.status.PERMISSION_DENIED, 'no identity issued') };
    return { fault: f };
  }

  /** Handlers for the socket of `uid` (undefined: the main socket). */
  #handlers(uid: number | undefined): grpc.UntypedServiceImplementation {
    const stream =
      (rpc: OpenStream['rpc']) =>
      (call: AnyStream): void => {
        const admitted = this.#admit(rpc, call.metadata);
        if (admitted.error) {
          call.emit('error', admitted.error);
          return;
        }
        const s: OpenStream = { rpc, uid, call, ready: false };
        const first =
          admitted.fault?.type === 'malformed' ? this.#malformedFor(rpc) : this.#streamMessage(rpc, s.uid);
        const send = (): void => {
          if (this.#closed || call.cancelled || !this.#streams.has(s)) return;
          if (first === undefined) {
            this.#endStream(s, 'permission-denied');
            return;
          }
          s.ready = true;
          this.#write(s, first);
        };
        call.on('cancelled', () => this.#streams.delete(s));
        call.on('error', () => this.#streams.delete(s));
        this.#streams.add(s);
        if (admitted.fault?.type === 'slow') {
          const timer = setTimeout(send, admitted.fault.delayMs);
          timer.unref();
          call.on('cancelled', () => clearTimeout(timer));
        } else {
          send();
        }
      };

    const unary =
      <Req, Res>(
        rpc: 'FetchJWTSVID' | 'ValidateJWTSVID',
        handle: (req: Req, fault: DevFault | undefined) => Promise<Res>,
      ) =>
      (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>): void => {
        const admitted = this.#admit(rpc, call.metadata);
        if (admitted.error) {
          callback(admitted.error);
          return;
        }
        const run = (): void => {
          handle(call.request, admitted.fault).then(
            (res) => callback(null, res),
            (err: unknown) => {
              const st = (err as { grpcStatus?: Partial<grpc.StatusObject> }).grpcStatus;
              callback(st ?? statusError(grpc.status.INTERNAL, (err as Error)?.message ?? 'internal error'));
            },
          );
        };
        if (admitted.fault?.type === 'slow') setTimeout(run, admitted.fault.delayMs).unref();
        else run();
      };

    const fail = (code: grpc.status, details: string): Error =>
      Object.assign(new Error(details), { grpcStatus: statusError(code, details) });

    return {
      FetchX509SVID: stream('FetchX509SVID'),
      FetchX509Bundles: stream('FetchX509Bundles'),
      FetchJWTBundles: stream('FetchJWTBundles'),
      FetchJWTSVID: unary<RawJwtSvidRequest, RawJwtSvidResponse>('FetchJWTSVID', async (req, fault) => {
        const audience = (req.audience ?? []).filter((a) => typeof a === 'string' && a !== '');
        if (audience.length === 0) throw fail(grpc.status.INVALID_ARGUMENT, 'audience must be specified');
        if (fault?.type === 'malformed') return this.#malformedFor('FetchJWTSVID') as RawJwtSvidResponse;
        let ids = this.#identitiesFor(uid);
        if (req.spiffe_id) ids = ids.filter((s) => s.id.spiffeId === req.spiffe_id);
        if (ids.length === 0) throw fail(grpc.status.PERMISSION_DENIED, 'no identity issued');
        const svids = await Promise.all(
          ids.map(async (s) => ({
            spiffe_id: s.id.spiffeId,
            svid: await this.mintJwtSvid(s.id.spiffeId, audience, { ttlMs: s.id.jwtSvidTtlMs }),
            hint: s.id.hint ?? '',
          })),
        );
        return { svids };
      }),
      ValidateJWTSVID: unary<RawValidateJwtSvidRequest, RawValidateJwtSvidResponse>(
        'ValidateJWTSVID',
        async (req) => {
          if (!req.audience) throw fail(grpc.status.INVALID_ARGUMENT, 'audience must be specified');
          if (!req.svid) throw fail(grpc.status.INVALID_ARGUMENT, 'svid must be specified');
          try {
            const svid = await validateJwtSvid(req.svid, this.bundleSet(), req.audience);
            return {
              spiffe_id: svid.spiffeId.toString(),
              claims: jsonToStruct(svid.claims as Record<string, unknown>),
            };
          } catch (err) {
            throw fail(grpc.status.INVALID_ARGUMENT, (err as Error).message);
          }
        },
      ),
    };
  }

  /**
   * Stops the server: open streams end, sockets and the temporary directory are removed, timers
   * stop. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#identities.values()) if (s.timer) clearTimeout(s.timer);
    this.#faults = [];
    this.#streams.clear();
    for (const server of this.#servers.values()) server.forceShutdown();
    for (const path of [this.socketPath, ...this.#uidSockets.values()]) {
      try {
        if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
      } catch {
        // already gone
      }
    }
    if (this.#ownedDir) rmSync(this.#ownedDir, { recursive: true, force: true });
  }

  /** Same as {@link DevWorkloadServer.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
