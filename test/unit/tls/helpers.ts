/**
 * Helpers for the TLS unit tests: certificates from the fixture factory turned into SDK
 * objects, raw node:tls peers (attackers), and protocol-level exchange checks.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { BundleSet, type X509Bundle } from '../../../src/bundle/index.js';
import { X509Svid } from '../../../src/svid/index.js';
import { type CaMaterial, type SvidMaterial, x509BundleOf } from '../../fixtures/pki.js';

/** An SVID material as the SDK's X509Svid. */
export function toSvid(m: SvidMaterial): X509Svid {
  return X509Svid.parse(m.chainPem, m.key.pkcs8Pem);
}

/** A BundleSet holding one bundle per CA's trust domain. */
export function bundlesOf(...cas: CaMaterial[]): BundleSet {
  const byTd = new Map<string, CaMaterial[]>();
  for (const ca of cas) byTd.set(ca.trustDomain, [...(byTd.get(ca.trustDomain) ?? []), ca]);
  const bundles: X509Bundle[] = [...byTd.values()].map((list) => x509BundleOf(...list));
  return new BundleSet(...bundles);
}

/** The port a listening server got. */
export function portOf(server: { address(): AddressInfo | string | null }): number {
  return (server.address() as AddressInfo).port;
}

/** Starts listening on 127.0.0.1:0. */
export async function listen<S extends tls.Server>(server: S): Promise<S> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** Closes a server, destroying its open connections. */
export async function closeServer(
  server: tls.Server,
  sockets: Set<tls.TLSSocket> = new Set(),
): Promise<void> {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** What happened to a request/response exchange on a TLS socket. */
export interface ExchangeResult {
  /** Whether the socket completed the handshake from its own point of view. */
  secureConnected: boolean;
  /** Data received (empty when none). */
  data: string;
  /** The error the socket emitted, if any. */
  error: (Error & { code?: string }) | undefined;
}

/**
 * Writes `payload`, waits for the first data, the end or an error (bounded by `timeoutMs`), and
 * reports. A refusal under TLS 1.3 shows as secureConnected=true with no data and an error/close.
 */
export function exchange(socket: tls.TLSSocket, payload = 'ping', timeoutMs = 5000): Promise<ExchangeResult> {
  return new Promise((resolve) => {
    const result: ExchangeResult = { secureConnected: false, data: '', error: undefined };
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => {
      result.error = Object.assign(new Error('exchange timed out'), { code: 'TEST_TIMEOUT' });
      finish();
    }, timeoutMs);
    socket.on('secureConnect', () => {
      result.secureConnected = true;
    });
    socket.on('data', (d: Buffer) => {
      result.data += d.toString();
      finish();
    });
    socket.on('error', (e) => {
      result.error ??= e;
      finish();
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.write(payload);
  });
}

/**
 * A raw node:tls server (no SPIFFE logic) presenting `svid`; it records whatever bytes it
 * receives and answers `pong`.
 */
export async function rawServer(
  svid: { chainPem: string; keyPem: string },
  extra: tls.TlsOptions = {},
): Promise<{ server: tls.Server; port: number; received: string[]; close(): Promise<void> }> {
  const received: string[] = [];
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: svid.chainPem, key: svid.keyPem, ...extra }, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      received.push(d.toString());
      s.write('pong');
    });
  });
  server.on('tlsClientError', () => {});
  await listen(server);
  return { server, port: portOf(server), received, close: () => closeServer(server, sockets) };
}

/** Raw client options presenting `svid` (or nothing) and trusting anything: the attacker's side. */
export function rawClientOptions(
  port: number,
  svid: { chainPem: string; keyPem: string } | undefined,
  extra: tls.ConnectionOptions = {},
): tls.ConnectionOptions {
  return {
    host: '127.0.0.1',
    port,
    rejectUnauthorized: false,
    ...(svid === undefined ? {} : { cert: svid.chainPem, key: svid.keyPem }),
    ...extra,
  };
}

/** PEM chain and key of an SVID material. */
export function pemOf(m: SvidMaterial): { chainPem: string; keyPem: string } {
  return { chainPem: m.chainPem, keyPem: m.key.pkcs8Pem };
}
