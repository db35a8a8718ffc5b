/**
 * What a watch does when its stream ends, per gRPC status code. This table is published in
 * docs/workload-api.md; changing a row is a behaviour change.
 */
import { status } from '@grpc/grpc-js';
import { IdentityError } from '../errors/index.js';

/**
 * What a watch does after its stream ended with a given status.
 *
 * - `fail`: stop the watch and report the error (retrying cannot help).
 * - `no-identity`: the caller has no identity; redact (by default) and retry on the slow lane.
 * - `backoff`: transient; retry after the next backoff delay.
 * - `reconnect`: the server closed the stream cleanly; reconnect at once if the stream delivered
 *   a message, else after the next backoff delay.
 */
export type RetryAction = 'fail' | 'no-identity' | 'backoff' | 'reconnect';

/** gRPC status names, as the table prints them. */
export const grpcStatusNames: Readonly<Record<number, string>> = Object.freeze({
  0: 'OK',
  1: 'CANCELLED',
  2: 'UNKNOWN',
  3: 'INVALID_ARGUMENT',
  4: 'DEADLINE_EXCEEDED',
  5: 'NOT_FOUND',
  6: 'ALREADY_EXISTS',
  7: 'PERMISSION_DENIED',
  8: 'RESOURCE_EXHAUSTED',
  9: 'FAILED_PRECONDITION',
  10: 'ABORTED',
  11: 'OUT_OF_RANGE',
  12: 'UNIMPLEMENTED',
  13: 'INTERNAL',
  14: 'UNAVAILABLE',
  15: 'DATA_LOSS',
  16: 'UNAUTHENTICATED',
});

/**
 * The retry table of watches and sources, per gRPC status code (a `CANCELLED` that the SDK caused
 * itself, by `close()` or an abort, never reaches it: it ends the watch quietly).
 *
 * `INVALID_ARGUMENT` and `UNIMPLEMENTED` fail at once (Workload Endpoint standard §6);
 * `PERMISSION_DENIED` takes the slow no-identity lane; everything else, including a clean end of
 * the stream, is retried.
 */
export const workloadRetryTable: Readonly<Record<number, RetryAction>> = Object.freeze({
  [status.OK]: 'reconnect',
  [status.CANCELLED]: 'backoff',
  [status.UNKNOWN]: 'backoff',
  [status.INVALID_ARGUMENT]: 'fail',
  [status.DEADLINE_EXCEEDED]: 'backoff',
  [status.NOT_FOUND]: 'backoff',
  [status.ALREADY_EXISTS]: 'backoff',
  [status.PERMISSION_DENIED]: 'no-identity',
  [status.RESOURCE_EXHAUSTED]: 'backoff',
  [status.FAILED_PRECONDITION]: 'backoff',
  [status.ABORTED]: 'backoff',
  [status.OUT_OF_RANGE]: 'backoff',
  [status.UNIMPLEMENTED]: 'fail',
  [status.INTERNAL]: 'backoff',
  [status.UNAVAILABLE]: 'backoff',
  [status.DATA_LOSS]: 'backoff',
  [status.UNAUTHENTICATED]: 'backoff',
});

/**
 * The action for a status code; unknown codes are retried with backoff.
 *
 * @param code - a gRPC status code.
 */
export function retryActionFor(code: number): RetryAction {
  return workloadRetryTable[code] ?? 'backoff';
}

/** A gRPC error as grpc-js reports it. */
export interface GrpcErrorLike {
  code?: number | undefined;
  details?: string | undefined;
  message?: string | undefined;
}

/** `CODE (details)` for messages. */
export function describeStatus(err: GrpcErrorLike | undefined): string {
  if (!err) return 'none';
  const name = grpcStatusNames[err.code ?? -1] ?? `code ${String(err.code)}`;
  const details = err.details ?? err.message ?? '';
  return details ? `${name} (${details})` : name;
}

/**
 * Maps a gRPC error of a Workload API call to an {@link IdentityError} with a stable code; the
 * gRPC error stays in `cause`.
 *
 * @param err - the grpc-js error.
 * @param what - which call failed, e.g. `FetchJWTSVID`.
 * @param address - the Workload API address.
 */
export function errorFromStatus(err: GrpcErrorLike, what: string, address: string): IdentityError {
  const code = err.code ?? status.UNKNOWN;
  const described = describeStatus(err);
  const details = { grpcCode: code, grpcStatus: grpcStatusNames[code] ?? String(code), address };
  const opts = { cause: err, details };
  switch (code) {
    case status.INVALID_ARGUMENT:
      return new IdentityError(
        'workload-invalid-argument',
        `${what} at ${address} was refused as invalid: ${described} (not retried)`,
        opts,
      );
    case status.UNIMPLEMENTED:
      return new IdentityError(
        'workload-unimplemented',
        `${what} is not implemented by the Workload API at ${address}: ${described} (not retried)`,
        opts,
      );
    case status.PERMISSION_DENIED:
      return new IdentityError(
        'workload-no-identity',
        `the Workload API at ${address} issued no identity to this process: ${described}`,
        opts,
      );
    case status.UNAVAILABLE:
      return new IdentityError(
        'workload-unavailable',
        `the Workload API at ${address} is unavailable: ${described}`,
        opts,
      );
    case status.DEADLINE_EXCEEDED:
      return new IdentityError(
        'workload-timeout',
        `${what} at ${address} did not answer in time: ${described}`,
        opts,
      );
    default:
      return new IdentityError('workload-rpc-failed', `${what} at ${address} failed: ${described}`, opts);
  }
}
