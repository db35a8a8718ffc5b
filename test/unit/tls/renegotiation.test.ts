// A TLS 1.2 server must not be able to renegotiate our client into a second handshake (and
// possibly another certificate) that our identity check never sees: the client refuses.
import type { TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { authorizeAny, connectMtls, staticX509Source } from '../../../src/tls/index.js';
import { createCa, issueSvid } from '../../fixtures/pki.js';
import { bundlesOf, pemOf, rawServer, toSvid } from './helpers.js';

describe('TLS 1.2 renegotiation', () => {
  it('the client refuses a server-initiated renegotiation', async () => {
    const ca = await createCa({ trustDomain: 'reneg.test' });
    const server = await issueSvid(ca, 'spiffe://reneg.test/server');
    const client = await issueSvid(ca, 'spiffe://reneg.test/client');
    const serverSockets: TLSSocket[] = [];
    const raw = await rawServer(pemOf(server), { maxVersion: 'TLSv1.2', minVersion: 'TLSv1.2' });
    raw.server.on('secureConnection', (s: TLSSocket) => serverSockets.push(s));
    try {
      const source = staticX509Source(toSvid(client), bundlesOf(ca));
      const socket = connectMtls(source, authorizeAny(), {
        host: '127.0.0.1',
        port: raw.port,
        minTlsVersion: 'TLSv1.2',
      });
      socket.on('error', () => {});
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', () => resolve());
        socket.once('error', reject);
      });
      expect(socket.getProtocol()).toBe('TLSv1.2');
      // Positive control: the connection works before the renegotiation attempt.
      socket.write('ping');
      await new Promise<void>((resolve) => socket.once('data', () => resolve()));
      // The client answers the server's HelloRequest with a no_renegotiation alert, which the
      // server sees as an error on its socket; a client that accepted would renegotiate silently.
      const server0 = serverSockets[0]!;
      const refused = new Promise<Error>((resolve) => server0.once('error', resolve));
      expect(server0.renegotiate({ rejectUnauthorized: false }, () => {})).toBe(true);
      socket.write('ping2');
      expect((await refused).message).toMatch(/no renegotiation/);
      socket.destroy();
    } finally {
      await raw.close();
    }
  });
});
