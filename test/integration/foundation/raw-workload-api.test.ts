// The foundation's first proof: a raw grpc-js client, using only our proto/workload.proto, talks
// to a real spire-agent. No SDK code is involved, so these tests check the rig and the proto.
import { X509Certificate } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SpireRig, startSpire } from '../../rig/index.js';

interface X509SvidMessage {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
  hint: string;
}
interface X509SvidResponse {
  svids: X509SvidMessage[];
  federated_bundles: Record<string, Buffer>;
}

const protoPath = fileURLToPath(new URL('../../../proto/workload.proto', import.meta.url));
const definition = protoLoader.loadSync(protoPath, { keepCase: true, longs: String, defaults: true });
const loaded = grpc.loadPackageDefinition(definition) as unknown as {
  SpiffeWorkloadAPI: new (address: string, creds: grpc.ChannelCredentials) => grpc.Client;
};

/** Opens FetchX509SVID and resolves with the first message or the stream's error. */
function fetchFirstX509(rig: SpireRig, metadata: grpc.Metadata): Promise<X509SvidResponse> {
  const client = new loaded.SpiffeWorkloadAPI(rig.workloadAddress, grpc.credentials.createInsecure());
  return new Promise<X509SvidResponse>((resolve, reject) => {
    const stream = (
      client as unknown as {
        FetchX509SVID(req: object, md: grpc.Metadata): grpc.ClientReadableStream<X509SvidResponse>;
      }
    ).FetchX509SVID({}, metadata);
    stream.on('data', (msg: X509SvidResponse) => {
      resolve(msg);
      stream.cancel();
    });
    stream.on('error', (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) reject(err);
    });
  }).finally(() => client.close());
}

function workloadMetadata(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return md;
}

describe('raw Workload API against a real spire-agent', () => {
  let rig: SpireRig;

  beforeAll(async () => {
    rig = await startSpire({ trustDomain: 'foundation.test', name: 'foundation-raw' });
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it('fails with PermissionDenied while no entry matches the caller', async () => {
    const err = await fetchFirstX509(rig, workloadMetadata()).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('returns the registered SPIFFE ID as an X.509-SVID once an entry exists', async () => {
    const spiffeId = 'spiffe://foundation.test/service/raw-client';
    await rig.createEntryAndWait({ spiffeId });
    const msg = await fetchFirstX509(rig, workloadMetadata());
    const svid = msg.svids.find((s) => s.spiffe_id === spiffeId);
    expect(svid, `SVIDs served: ${msg.svids.map((s) => s.spiffe_id).join(', ')}`).toBeDefined();
    // x509_svid is concatenated DER, leaf first; the URI SAN of the leaf is the registered ID.
    const leaf = new X509Certificate(svid!.x509_svid);
    expect(leaf.subjectAltName).toContain(`URI:${spiffeId}`);
    expect(leaf.ca).toBe(false);
    // The bundle is concatenated DER CA certificates and the leaf chains to one of them.
    const root = new X509Certificate(svid!.bundle);
    expect(root.ca).toBe(true);
    expect(leaf.checkIssued(root)).toBe(true);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(svid!.x509_svid_key.length).toBeGreaterThan(0);
  });

  it('fails with InvalidArgument without the workload.spiffe.io metadata', async () => {
    const err = await fetchFirstX509(rig, new grpc.Metadata()).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/security header/);
  });

  it('fails with InvalidArgument when the metadata value is not exactly "true"', async () => {
    const md = new grpc.Metadata();
    md.set('workload.spiffe.io', 'TRUE');
    const err = await fetchFirstX509(rig, md).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
  });
});
