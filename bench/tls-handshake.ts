/**
 * mTLS handshake benchmark: full TLS 1.3 mTLS handshakes per second through the SDK's helpers
 * (createMtlsTlsServer + MtlsClient: per-trust-domain SVID verification and authorization on
 * both sides) against plain node:tls with the same certificates and a shared SecureContext,
 * run side by side in alternating rounds; plus the cost of a rotation (context rebuild + swap).
 *
 * Run: npx tsc -p bench/tls.tsconfig.json && node node_modules/.cache/tachikoma-bench-tls/bench/tls-handshake.js [handshakes] [rounds]
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { X509Bundle } from '../src/bundle/index.js';
import { createAuthority, issueX509Svid } from '../src/dev/pki.js';
import { X509Svid } from '../src/svid/index.js';
import { authorizeId, createMtlsTlsServer, MtlsClient, staticX509Source } from '../src/tls/index.js';

const N = Number(process.argv[2] ?? 1000);
const ROUNDS = Number(process.argv[3] ?? 3);
const td = 'bench.example';
const now = Date.now();
const ca = createAuthority(`spiffe://${td}`, 1, 24 * 3600_000, now);
const issue = (path: string) => {
  const s = issueX509Svid(ca, `spiffe://${td}/${path}`, 3600_000, now);
  return X509Svid.parse(s.chainDer, s.keyDer);
};
const serverSvid = issue('server');
const serverSvid2 = issue('server');
const clientSvid = issue('client');
const bundle = X509Bundle.fromAuthorities(td, [ca.cert.der]);
const caPem = bundle.marshal();

async function handshakes(port: number, connect: () => tls.TLSSocket, n: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const s = connect();
    // done when the server, after its own checks, has sent its byte
    await once(s, 'data');
    s.destroy();
  }
  void port;
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function plain(): Promise<number> {
  const s = serverSvid.marshal();
  const c = clientSvid.marshal();
  const server = tls.createServer(
    {
      key: s.privateKeyPem,
      cert: s.certificatesPem,
      ca: caPem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    },
    (sock) => {
      sock.on('error', () => {});
      sock.end('x');
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const ctx = tls.createSecureContext({
    key: c.privateKeyPem,
    cert: c.certificatesPem,
    ca: caPem,
    minVersion: 'TLSv1.3',
  });
  const ms = await handshakes(
    port,
    () => tls.connect({ host: '127.0.0.1', port, secureContext: ctx, checkServerIdentity: () => undefined }),
    N,
  );
  await new Promise<void>((r) => server.close(() => r()));
  return (N / ms) * 1000;
}

async function sdk(): Promise<number> {
  const server = createMtlsTlsServer(
    staticX509Source(serverSvid, bundle),
    authorizeId(`spiffe://${td}/client`),
    (sock) => {
      sock.on('error', () => {});
      sock.end('x');
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const client = new MtlsClient(staticX509Source(clientSvid, bundle), authorizeId(`spiffe://${td}/server`));
  const ms = await handshakes(port, () => client.connect({ host: '127.0.0.1', port }), N);
  client.close();
  await new Promise<void>((r) => server.close(() => r()));
  return (N / ms) * 1000;
}

async function rotation(iterations: number): Promise<number[]> {
  const source = staticX509Source(serverSvid, bundle);
  let resolveRotated: (() => void) | undefined;
  const server = createMtlsTlsServer(source, authorizeId(`spiffe://${td}/client`), undefined, {
    onRotated: () => resolveRotated?.(),
  });
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const rotated = new Promise<void>((r) => {
      resolveRotated = r;
    });
    const start = process.hrtime.bigint();
    source.update({ svid: i % 2 === 0 ? serverSvid2 : serverSvid });
    await rotated;
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  server.close();
  return times;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

async function main(): Promise<void> {
  // warm-up
  await plain();
  await sdk();
  const plainRates: number[] = [];
  const sdkRates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    plainRates.push(await plain());
    sdkRates.push(await sdk());
  }
  const rot = await rotation(200);
  const result = {
    node: process.version,
    openssl: process.versions.openssl,
    handshakesPerRound: N,
    rounds: ROUNDS,
    plainNodeTls: { perSecond: plainRates.map((x) => Math.round(x)), median: Math.round(median(plainRates)) },
    sdkHelpers: { perSecond: sdkRates.map((x) => Math.round(x)), median: Math.round(median(sdkRates)) },
    ratio: Number((median(sdkRates) / median(plainRates)).toFixed(3)),
    rotationMs: {
      p50: Number(median(rot).toFixed(3)),
      p95: Number(pct(rot, 0.95).toFixed(3)),
      max: Number(Math.max(...rot).toFixed(3)),
    },
  };
  console.log(JSON.stringify(result, null, 2));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
