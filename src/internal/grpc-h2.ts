/**
 * A minimal gRPC client over node:http2 for one job: send one request on a server-streaming RPC
 * and return the first response message (the one-shot Workload API fetches). It costs about half
 * the CPU of a grpc-js call per fetch. Everything else (unary calls, long-lived watches) goes
 * through grpc-js.
 *
 * Rules kept: gRPC's length-prefixed framing (uncompressed only; a compressed message is refused),
 * a hard bound on the message length read from the prefix before anything is buffered, the
 * deadline (also sent as `grpc-timeout`), status from trailers or a trailers-only answer
 * (`grpc-message` percent-decoded), HTTP and HTTP/2 failures mapped to gRPC codes as the gRPC
 * HTTP/2 protocol document says.
 *
 * @internal
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { status as Status } from '@grpc/grpc-js';

/** A gRPC status as the caller maps it (same shape as grpc-js errors). */
export interface H2Status {
  code: number;
  details: string;
}

/** Where to connect. */
export type H2Target = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** A call in flight. */
export interface H2Call {
  /** Resolves with the first message's bytes; rejects with an {@link H2Status}. */
  readonly result: Promise<Buffer>;
  /** Cancels the call (the promise rejects with CANCELLED unless already settled). */
  cancel(): void;
}

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

function httpToGrpc(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return Status.INTERNAL;
    case 401:
      return Status.UNAUTHENTICATED;
    case 403:
      return Status.PERMISSION_DENIED;
    case 404:
      return Status.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return Status.UNAVAILABLE;
    default:
      return Status.UNKNOWN;
  }
}

function decodeMessage(raw: unknown): string {
  if (typeof raw !== 'string') return '';
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function statusFrom(headers: http2.IncomingHttpHeaders): H2Status | undefined {
  const raw = headers['grpc-status'];
  if (raw === undefined) return undefined;
  const code = Number(Array.isArray(raw) ? raw[0] : raw);
  return {
    code: Number.isInteger(code) && code >= 0 && code <= 16 ? code : Status.UNKNOWN,
    details: decodeMessage(headers['grpc-message']),
  };
}

/** First-message gRPC calls over one lazily (re)connected HTTP/2 session. */
export class H2FirstMessageClient {
  readonly #target: H2Target;
  readonly #maxReceiveBytes: number;
  #session: http2.ClientHttp2Session | undefined;
  /** Per session: calls to fail when the session fails (a connect error, say). */
  readonly #waiting = new WeakMap<http2.ClientHttp2Session, Set<(err: Error) => void>>();
  #active = 0;
  #closed = false;

  constructor(target: H2Target, maxReceiveBytes: number) {
    this.#target = target;
    this.#maxReceiveBytes = maxReceiveBytes;
  }

  #connect(): http2.ClientHttp2Session {
    const existing = this.#session;
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const target = this.#target;
    const session = http2.connect('http://localhost', {
      createConnection: () =>
        target.kind === 'unix'
          ? net.connect(target.path)
          : net.connect({ host: target.host, port: target.port }),
      settings: { enablePush: false },
      // Room for the largest message we accept, plus headroom (in MB).
      maxSessionMemory: Math.ceil(this.#maxReceiveBytes / (1024 * 1024)) + 16,
    });
    const forget = (): void => {
      if (this.#session === session) this.#session = undefined;
    };
    const waiting = new Set<(err: Error) => void>();
    this.#waiting.set(session, waiting);
    session.on('error', (err: Error) => {
      forget();
      for (const w of [...waiting]) w(err);
    });
    session.on('goaway', forget);
    session.on('close', forget);
    session.unref();
    this.#session = session;
    return session;
  }

  #track(delta: 1 | -1, session: http2.ClientHttp2Session): void {
    this.#active += delta;
    // An idle session never keeps the process alive; a call in flight does.
    if (this.#active > 0) session.ref();
    else if (!session.destroyed) session.unref();
  }

  /**
   * Starts `rpcPath` with one request message and resolves with the first response message.
   *
   * @param rpcPath - e.g. `/SpiffeWorkloadAPI/FetchX509SVID`.
   * @param request - the serialized request message.
   * @param metadata - extra request headers (lowercase names).
   * @param timeoutMs - deadline.
   */
  first(
    rpcPath: string,
    request: Buffer,
    metadata: Readonly<Record<string, string>>,
    timeoutMs: number,
  ): H2Call {
    let settle!: (err: H2Status | undefined, value?: Buffer) => void;
    let cancelHook: () => void = () => {};
    const result = new Promise<Buffer>((resolve, reject) => {
      let done = false;
      settle = (err, value) => {
        if (done) return;
        done = true;
        if (err) reject(err);
        else resolve(value as Buffer);
      };
      if (this.#closed) {
        settle({ code: Status.CANCELLED, details: 'client closed' });
        return;
      }
      let session: http2.ClientHttp2Session;
      let stream: http2.ClientHttp2Stream;
      try {
        session = this.#connect();
        stream = session.request(
          {
            ':method': 'POST',
            ':path': rpcPath,
            ':scheme': 'http',
            ':authority': 'localhost',
            'content-type': 'application/grpc',
            te: 'trailers',
            'grpc-timeout': `${Math.max(1, Math.ceil(timeoutMs))}m`,
            'user-agent': 'tachikoma-identity',
            ...metadata,
          },
          { endStream: false },
        );
      } catch (err) {
        settle({ code: Status.UNAVAILABLE, details: (err as Error).message });
        return;
      }
      this.#track(1, session);
      let tracked = true;
      const untrack = (): void => {
        if (!tracked) return;
        tracked = false;
        this.#track(-1, session);
      };
      const timer = setTimeout(() => {
        settle({ code: Status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
        stream.close(NGHTTP2_CANCEL);
      }, timeoutMs);
      const finish = (err: H2Status | undefined, value?: Buffer): void => {
        clearTimeout(timer);
        settle(err, value);
      };
      cancelHook = () => {
        finish({ code: Status.CANCELLED, details: 'Cancelled on client' });
        if (!stream.closed) stream.close(NGHTTP2_CANCEL);
      };

      let buffered: Buffer[] = [];
      let bufferedBytes = 0;
      let expected = -1;
      let got = false;
      let trailersStatus: H2Status | undefined;
      let httpStatus = 200;

      stream.on('response', (headers) => {
        httpStatus = Number(headers[':status'] ?? 0);
        const st = statusFrom(headers); // a trailers-only answer carries its status here
        if (st) trailersStatus = st;
        if (httpStatus !== 200 && !st) {
          finish({ code: httpToGrpc(httpStatus), details: `HTTP status ${httpStatus}` });
          stream.close(NGHTTP2_CANCEL);
        }
      });
      stream.on('trailers', (headers) => {
        const st = statusFrom(headers);
        if (st) trailersStatus = st;
      });
      stream.on('data', (chunk: Buffer) => {
        if (got) return;
        buffered.push(chunk);
        bufferedBytes += chunk.length;
        if (expected < 0 && bufferedBytes >= 5) {
          const head = buffered.length === 1 ? buffered[0]! : Buffer.concat(buffered);
          buffered = [head];
          if (head[0] !== 0) {
            finish({
              code: Status.INTERNAL,
              details: 'compressed message received without negotiated encoding',
            });
            stream.close(NGHTTP2_CANCEL);
            got = true;
            return;
          }
          expected = head.readUInt32BE(1);
          if (expected > this.#maxReceiveBytes) {
            finish({
              code: Status.RESOURCE_EXHAUSTED,
              details: `received message larger than max (${expected} vs ${this.#maxReceiveBytes})`,
            });
            stream.close(NGHTTP2_CANCEL);
            got = true;
            return;
          }
        }
        if (expected >= 0 && bufferedBytes >= 5 + expected) {
          got = true;
          const all = buffered.length === 1 ? buffered[0]! : Buffer.concat(buffered);
          buffered = [];
          finish(undefined, Buffer.from(all.subarray(5, 5 + expected)));
          stream.close(NGHTTP2_CANCEL);
        }
      });
      let streamError: Error | undefined;
      stream.on('error', (err: Error) => {
        // 'close' follows and decides; a connect failure arrives here as the cause.
        streamError = err;
      });
      stream.on('close', () => {
        untrack();
        if (trailersStatus) {
          finish(
            trailersStatus.code === Status.OK
              ? { code: Status.OK, details: 'stream ended without a message' }
              : trailersStatus,
          );
          return;
        }
        const rst = stream.rstCode;
        if (rst === NGHTTP2_REFUSED_STREAM) finish({ code: Status.UNAVAILABLE, details: 'stream refused' });
        else if (rst === NGHTTP2_CANCEL) finish({ code: Status.CANCELLED, details: 'stream cancelled' });
        else if (httpStatus !== 200)
          finish({ code: httpToGrpc(httpStatus), details: `HTTP status ${httpStatus}` });
        else {
          const cause = (streamError?.cause as Error | undefined)?.message ?? streamError?.message;
          finish({
            code: Status.UNAVAILABLE,
            details: cause
              ? `No connection established. Last error: ${cause}`
              : `connection closed (HTTP/2 code ${rst ?? 'none'})`,
          });
        }
      });
      // Connection failures surface on the session; fail this stream with them.
      const onSessionError = (err: Error): void => {
        finish({
          code: Status.UNAVAILABLE,
          details: `No connection established. Last error: ${err.message}`,
        });
      };
      const waiting = this.#waiting.get(session);
      waiting?.add(onSessionError);
      stream.once('close', () => waiting?.delete(onSessionError));

      const frame = Buffer.allocUnsafe(5 + request.length);
      frame[0] = 0;
      frame.writeUInt32BE(request.length, 1);
      request.copy(frame, 5);
      stream.end(frame);
    });
    return { result, cancel: () => cancelHook() };
  }

  /** Closes the session; calls in flight end with CANCELLED. Idempotent. */
  close(): void {
    this.#closed = true;
    const s = this.#session;
    this.#session = undefined;
    s?.destroy();
  }
}
