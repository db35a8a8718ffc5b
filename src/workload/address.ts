/**
 * Workload API addresses, parsed as the SPIFFE Workload Endpoint standard (§4) says.
 *
 * Two forms exist: `unix:` with an absolute path and no authority (`unix:///run/spire/api.sock`,
 * or the equivalent `unix:/run/spire/api.sock`), and `tcp:` with an IP address and a port
 * (`tcp://127.0.0.1:8081`, `tcp://[::1]:8081`). Nothing else is allowed: no user info, no query,
 * no fragment, no host names. We do not accept `unix://relative/path` (go-spiffe does): the
 * standard forbids an authority component there and such a path is ambiguous.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { IdentityError } from '../errors/index.js';

/** The environment variable that names the Workload API when no address is given. */
export const SPIFFE_ENDPOINT_SOCKET = 'SPIFFE_ENDPOINT_SOCKET';

/** Longest unix socket path Linux accepts (`sun_path` is 108 bytes including the NUL). */
const MAX_UNIX_PATH_BYTES = 107;
/** Longest address string we look at at all. */
const MAX_ADDRESS_LENGTH = 4096;

/** A validated Workload API address. */
export type WorkloadAddress =
  | {
      /** `unix`: a unix domain socket. */
      readonly kind: 'unix';
      /** The absolute socket path. */
      readonly path: string;
      /** The address as given (normalised to `unix://` + path). */
      readonly uri: string;
      /** The grpc-js target for this address. */
      readonly target: string;
    }
  | {
      /** `tcp`: a TCP endpoint on an IP address. */
      readonly kind: 'tcp';
      /** The IP address (without brackets for IPv6). */
      readonly host: string;
      /** The TCP port, 1..65535. */
      readonly port: number;
      /** The address as given (normalised). */
      readonly uri: string;
      /** The grpc-js target for this address. */
      readonly target: string;
    };

function invalid(address: string, rule: string): IdentityError {
  return new IdentityError(
    'workload-address-invalid',
    `Workload API address ${JSON.stringify(address)}: ${rule}`,
    {
      details: { address },
    },
  );
}

function hasControlOrSpace(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}

function parseUnix(address: string, rest: string): WorkloadAddress {
  // rest is what follows "unix:". Either "//" + authority + path, or a path.
  let path: string;
  if (rest.startsWith('//')) {
    const afterSlashes = rest.slice(2);
    const slash = afterSlashes.indexOf('/');
    const authority = slash === -1 ? afterSlashes : afterSlashes.slice(0, slash);
    if (authority !== '') {
      throw invalid(address, `a unix address must not have an authority component (found "${authority}")`);
    }
    path = slash === -1 ? '' : afterSlashes.slice(slash);
  } else {
    path = rest;
  }
  if (path === '') throw invalid(address, 'a unix address must name a socket path');
  if (!path.startsWith('/')) throw invalid(address, 'a unix socket path must be absolute');
  if (path.includes('?')) throw invalid(address, 'a unix address must not have a query');
  if (path.includes('#')) throw invalid(address, 'a unix address must not have a fragment');
  if (path.includes('%')) throw invalid(address, 'percent-encoding is not accepted in a unix socket path');
  if (path.endsWith('/')) throw invalid(address, 'a unix socket path must not end with "/"');
  if (Buffer.byteLength(path) > MAX_UNIX_PATH_BYTES) {
    throw invalid(address, `a unix socket path is limited to ${MAX_UNIX_PATH_BYTES} bytes on Linux`);
  }
  return { kind: 'unix', path, uri: `unix://${path}`, target: `unix://${path}` };
}

function parseTcp(address: string, rest: string): WorkloadAddress {
  if (!rest.startsWith('//')) throw invalid(address, 'a tcp address has the form tcp://IP:port');
  const authority = rest.slice(2);
  if (authority.includes('/')) throw invalid(address, 'a tcp address must not have a path');
  if (authority.includes('?')) throw invalid(address, 'a tcp address must not have a query');
  if (authority.includes('#')) throw invalid(address, 'a tcp address must not have a fragment');
  if (authority.includes('@')) throw invalid(address, 'a tcp address must not have user info');
  let host: string;
  let portText: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) throw invalid(address, 'unterminated "[" in IPv6 host');
    host = authority.slice(1, close);
    const after = authority.slice(close + 1);
    if (!after.startsWith(':')) throw invalid(address, 'a tcp address must have a port');
    portText = after.slice(1);
    if (!isIPv6(host) || host.includes('%'))
      throw invalid(address, 'the host of a tcp address must be an IP address');
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon === -1) throw invalid(address, 'a tcp address must have a port');
    host = authority.slice(0, colon);
    portText = authority.slice(colon + 1);
    if (host === '') throw invalid(address, 'a tcp address must have a host');
    if (!isIPv4(host)) throw invalid(address, 'the host of a tcp address must be an IP address');
  }
  if (!/^[0-9]{1,5}$/.test(portText)) throw invalid(address, 'a tcp address must have a decimal port');
  const port = Number(portText);
  if (port < 1 || port > 65535) throw invalid(address, 'a tcp port must be within 1..65535');
  const v6 = host.includes(':');
  const hostPort = v6 ? `[${host}]:${port}` : `${host}:${port}`;
  return {
    kind: 'tcp',
    host,
    port,
    uri: `tcp://${hostPort}`,
    target: `${v6 ? 'ipv6' : 'ipv4'}:${hostPort}`,
  };
}

/**
 * Parses and validates a Workload API address.
 *
 * @param address - `unix:///abs/path` (or `unix:/abs/path`) or `tcp://IP:port`.
 * @returns the validated address with its grpc-js target.
 * @throws IdentityError `workload-address-invalid` naming the rule the address breaks.
 */
export function parseWorkloadAddress(address: string): WorkloadAddress {
  if (typeof address !== 'string') throw invalid(String(address), 'the address must be a string');
  if (address.length > MAX_ADDRESS_LENGTH) {
    throw invalid(address.slice(0, 64), `longer than ${MAX_ADDRESS_LENGTH} characters`);
  }
  if (address === '') throw invalid(address, 'the address is empty');
  if (hasControlOrSpace(address)) throw invalid(address, 'whitespace and control characters are not allowed');
  const colon = address.indexOf(':');
  if (colon <= 0) throw invalid(address, 'the address must start with "unix:" or "tcp:"');
  const scheme = address.slice(0, colon);
  const rest = address.slice(colon + 1);
  // Schemes are matched exactly (lowercase), as the standard writes them.
  if (scheme === 'unix') return parseUnix(address, rest);
  if (scheme === 'tcp') return parseTcp(address, rest);
  throw invalid(address, `scheme "${scheme}" is not supported: use "unix" or "tcp"`);
}

/**
 * Chooses the Workload API address: the explicit one when given, otherwise the
 * `SPIFFE_ENDPOINT_SOCKET` environment variable (Workload Endpoint standard §4).
 *
 * @param explicit - an address passed by the caller, if any.
 * @param env - the environment to read (default `process.env`).
 * @throws IdentityError `workload-address-missing` when neither is set, or
 *   `workload-address-invalid` when the chosen address is malformed.
 */
export function resolveWorkloadAddress(
  explicit?: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): WorkloadAddress {
  if (explicit !== undefined) return parseWorkloadAddress(explicit);
  const fromEnv = env[SPIFFE_ENDPOINT_SOCKET];
  if (fromEnv === undefined || fromEnv === '') {
    throw new IdentityError(
      'workload-address-missing',
      `no Workload API address: pass one, or set ${SPIFFE_ENDPOINT_SOCKET} (unix:///path or tcp://IP:port)`,
    );
  }
  return parseWorkloadAddress(fromEnv);
}
