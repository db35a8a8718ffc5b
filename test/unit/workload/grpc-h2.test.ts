// The first-message gRPC client of one-shot fetches, against hand-made HTTP/2 servers that break
// the protocol in specific ways (the dev server and SPIRE only ever answer correctly).
import { mkdtempSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { H2FirstMessageClient, type H2Status } from '../../../src/internal/grpc-h2.js';

type Handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(handler: Handler): Promise<{ path: string; seen: http2.IncomingHttpHeaders[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'tk-h2-'));
  const path = join(dir, 's.sock');
  const seen: http2.IncomingHttpHeaders[] = [];
  const srv = http2.createServer();
  srv.on('stream', (stream, headers) => {
    seen.push(headers);
    handler(stream, headers);
  });
  await new Promise<void>((r) => srv.listen(path, r));
  cleanups.push(async () => {
    await new Promise<void>((r) => srv.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, seen };
}

function frame(payload: Buffer, compressed = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = compressed;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

function client(path: string, max = 1024): H2FirstMessageClient {
  const c = new H2FirstMessageClient({ kind: 'unix', path }, max);
  cleanups.push(() => c.close());
  return c;
}

async function failure(p: Promise<Buffer>): Promise<H2Status> {
  try {
    await p;
  } catch (err) {
    return err as H2Status;
  }
  throw new Error('expected a failure');
}

describe('H2FirstMessageClient', () => {
  it('sends a framed request with the gRPC headers and returns the first message', async () => {
    const s = await server((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      stream.write(frame(Buffer.from('first')));
      stream.write(frame(Buffer.from('second')));
    });
    const got = await client(s.path).first(
      '/Svc/Method',
      Buffer.from('req'),
      { 'workload.spiffe.io': 'true' },
      5000,
    ).result;
    expect(got.toString()).toBe('first');
    const h = s.seen[0]!;
    expect(h[':path']).toBe('/Svc/Method');
    expect(h['content-type']).toBe('application/grpc');
    expect(h['te']).toBe('trailers');
    expect(h['workload.spiffe.io']).toBe('true');
    expect(h['grpc-timeout']).toBe('5000m');
  });

  it('reassembles a message split across DATA frames', async () => {
    const s = await server((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      const f = frame(Buffer.from('abcdefghij'));
      stream.write(f.subarray(0, 3));
      setImmediate(() => stream.write(f.subarray(3, 9)));
      setTimeout(() => stream.write(f.subarray(9)), 5);
    });
    expect((await client(s.path).first('/S/M', Buffer.alloc(0), {}, 5000).result).toString()).toBe(
      'abcdefghij',
    );
  });

  it('refuses a message longer than the limit from its length prefix, before buffering it', async () => {
    const s = await server((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      const head = Buffer.alloc(5);
      head.writeUInt32BE(10_000_000, 1);
      stream.write(head); // claims 10 MB, sends nothing more
    });
    const st = await failure(client(s.path, 1024).first('/S/M', Buffer.alloc(0), {}, 5000).result);
    expect(st.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(st.details).toContain('10000000 vs 1024');
  });

  it('refuses a compressed message (no encoding was negotiated)', async () => {
    const s = await server((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      stream.write(frame(Buffer.from('zz'), 1));
    });
    expect((await failure(client(s.path).first('/S/M', Buffer.alloc(0), {}, 5000).result)).code).toBe(
      status.INTERNAL,
    );
  });

  it('reads the status of a trailers-only answer and percent-decodes grpc-message', async () => {
    const s = await server((stream) => {
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': '7',
          'grpc-message': 'no%20identity%20issued',
        },
        { endStream: true },
      );
    });
    expect(await failure(client(s.path).first('/S/M', Buffer.alloc(0), {}, 5000).result)).toEqual({
      code: status.PERMISSION_DENIED,
      details: 'no identity issued',
    });
  });

  it('reads the status from trailers, and reports a clean end without a message as OK', async () => {
    const s = await server((stream, headers) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () =>
        stream.sendTrailers(
          headers[':path'] === '/S/Fail'
            ? { 'grpc-status': '14', 'grpc-message': 'down' }
            : { 'grpc-status': '0' },
        ),
      );
      stream.end();
    });
    const c = client(s.path);
    expect(await failure(c.first('/S/Fail', Buffer.alloc(0), {}, 5000).result)).toEqual({
      code: 14,
      details: 'down',
    });
    expect((await failure(c.first('/S/Ok', Buffer.alloc(0), {}, 5000).result)).code).toBe(status.OK);
  });

  it('maps a non-200 HTTP status as the gRPC HTTP/2 protocol says', async () => {
    const s = await server((stream) => {
      stream.respond({ ':status': 404 }, { endStream: true });
    });
    expect((await failure(client(s.path).first('/S/M', Buffer.alloc(0), {}, 5000).result)).code).toBe(
      status.UNIMPLEMENTED,
    );
  });

  it('gives up at the deadline, and cancels on request', async () => {
    const s = await server((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }); // never answers
    });
    const c = client(s.path);
    expect((await failure(c.first('/S/M', Buffer.alloc(0), {}, 50).result)).code).toBe(
      status.DEADLINE_EXCEEDED,
    );
    const call = c.first('/S/M', Buffer.alloc(0), {}, 60_000);
    call.cancel();
    expect((await failure(call.result)).code).toBe(status.CANCELLED);
  });

  it('reports UNAVAILABLE when nothing listens, and reconnects when something does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tk-h2-none-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'late.sock');
    const c = client(path);
    const st = await failure(c.first('/S/M', Buffer.alloc(0), {}, 5000).result);
    expect(st.code).toBe(status.UNAVAILABLE);
    expect(st.details).toContain('ENOENT');
    const srv = http2.createServer();
    srv.on('stream', (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      stream.write(frame(Buffer.from('late')));
    });
    await new Promise<void>((r) => srv.listen(path, r));
    cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
    expect((await c.first('/S/M', Buffer.alloc(0), {}, 5000).result).toString()).toBe('late');
    c.close(); // before the server's cleanup, which waits for its sessions to end
  });

  it('fails calls after close() with CANCELLED', async () => {
    const s = await server((stream) => stream.respond({ ':status': 200 }));
    const c = client(s.path);
    c.close();
    expect((await failure(c.first('/S/M', Buffer.alloc(0), {}, 5000).result)).code).toBe(status.CANCELLED);
  });
});
