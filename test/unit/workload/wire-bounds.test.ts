// Count limits applied to the wire bytes of Workload API answers, before the protobuf decoder
// expands them: a hostile or broken agent must not be able to exhaust memory with millions of
// tiny repeated entries (2 bytes on the wire, ~130 bytes of heap each once decoded).
import { mkdtempSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isIdentityError } from '../../../src/errors/index.js';
import { loadWorkloadService } from '../../../src/internal/grpc-workload.js';
import { type ReconnectInfo, WorkloadAPIClient } from '../../../src/workload/index.js';
import { boundedDeserializer, defaultWorkloadLimits } from '../../../src/workload/parse.js';
import { nextEvent, recordingBackoff, rejection } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** `n` empty entries of length-delimited field `field`: two bytes each on the wire. */
function repeatedEmpty(field: number, n: number): Buffer {
  const buf = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) buf[2 * i] = (field << 3) | 2;
  return buf;
}

/** A gRPC server that answers every call with `message` and status OK. */
async function rawServer(message: Buffer): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'tk-wire-'));
  const path = join(dir, 's.sock');
  const srv = http2.createServer();
  srv.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.on('error', () => {});
    const head = Buffer.alloc(5);
    head.writeUInt32BE(message.length, 1);
    stream.end(Buffer.concat([head, message]));
  });
  await new Promise<void>((r) => srv.listen(path, r));
  cleanups.push(async () => {
    await new Promise<void>((r) => srv.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });
  return `unix://${path}`;
}

describe('Workload API answers are bounded on the wire', () => {
  it('million-empty-crl bomb: the limit is checked before the decoder runs', () => {
    let decoded = false;
    const decode = boundedDeserializer('FetchX509SVID', defaultWorkloadLimits, () => {
      decoded = true;
      return {};
    });
    const err = (() => {
      try {
        decode(repeatedEmpty(2, 1_000_000));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(isIdentityError(err, 'workload-malformed-response')).toBe(true);
    expect((err as Error).message).toMatch(/more than 1000 crl entries/);
    expect(decoded).toBe(false);
    // At the limit the decoder runs.
    decode(repeatedEmpty(2, 1000));
    expect(decoded).toBe(true);
  });

  it('million-empty-crl bomb: also bounds maps and SVIDs of every streamed answer', () => {
    const { definition } = loadWorkloadService();
    const real = (rpc: string) =>
      (definition[rpc] as { responseDeserialize(b: Buffer): unknown }).responseDeserialize;
    const limits = { maxSvids: 3, maxBundles: 3, maxCrls: 3 };
    const cases: [Parameters<typeof boundedDeserializer>[0], number, RegExp][] = [
      ['FetchX509SVID', 1, /svids/],
      ['FetchX509SVID', 3, /federated_bundles/],
      ['FetchX509Bundles', 1, /crl/],
      ['FetchX509Bundles', 2, /bundles/],
      ['FetchJWTBundles', 1, /bundles/],
      ['FetchJWTSVID', 1, /svids/],
    ];
    for (const [rpc, field, name] of cases) {
      const decode = boundedDeserializer(rpc, limits, real(rpc));
      expect(() => decode(repeatedEmpty(field, 4))).toThrow(name);
      expect(() => decode(repeatedEmpty(field, 3))).not.toThrow();
    }
    // Wire types the agent never sends (groups) are refused rather than skipped blindly.
    const group = boundedDeserializer('FetchJWTBundles', limits, real('FetchJWTBundles'));
    expect(() => group(Buffer.from([(9 << 3) | 3]))).toThrow(
      /workload-malformed-response|not valid protobuf/,
    );
  });

  it('million-empty-crl bomb from an agent: fetch and watch refuse it and keep running', async () => {
    const address = await rawServer(repeatedEmpty(2, 1_000_000));
    const { factory } = recordingBackoff(1000);
    const client = new WorkloadAPIClient({ address, backoff: factory });
    cleanups.push(() => client.close());
    const err = await rejection(client.fetchX509Context());
    expect(isIdentityError(err, 'workload-malformed-response')).toBe(true);
    expect(err.message).toMatch(/refused before decoding/);

    const watch = client.watchX509Context();
    const [info] = await nextEvent<[ReconnectInfo]>(watch, 'reconnecting', 8000);
    expect(info.grpcCode).toBe(13); // INTERNAL: grpc-js reports the decoder's refusal
    expect(info.error.message).toMatch(/refused before decoding/);
    expect(watch.current).toBeUndefined();
    await watch.close();
  });
});
