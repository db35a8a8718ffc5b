/**
 * The Workload API proto, loaded once per process, and the raw wire types of its messages.
 * Shared by the Workload API client (src/workload) and the dev server (src/dev).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { IdentityError } from '../errors/index.js';

/** Metadata key every Workload API call must carry with the value `true`. */
export const WORKLOAD_HEADER = 'workload.spiffe.io';

/** Raw `X509SVID` message. */
export interface RawX509Svid {
  spiffe_id: string;
  x509_svid: Uint8Array;
  x509_svid_key: Uint8Array;
  bundle: Uint8Array;
  hint: string;
}

/** Raw `X509SVIDResponse`. */
export interface RawX509SvidResponse {
  svids: RawX509Svid[];
  crl: Uint8Array[];
  federated_bundles: Record<string, Uint8Array>;
}

/** Raw `X509BundlesResponse`. */
export interface RawX509BundlesResponse {
  crl: Uint8Array[];
  bundles: Record<string, Uint8Array>;
}

/** Raw `JWTSVIDRequest`. */
export interface RawJwtSvidRequest {
  audience: string[];
  spiffe_id: string;
}

/** Raw `JWTSVID`. */
export interface RawJwtSvid {
  spiffe_id: string;
  svid: string;
  hint: string;
}

/** Raw `JWTSVIDResponse`. */
export interface RawJwtSvidResponse {
  svids: RawJwtSvid[];
}

/** Raw `JWTBundlesResponse`. */
export interface RawJwtBundlesResponse {
  bundles: Record<string, Uint8Array>;
}

/** Raw `ValidateJWTSVIDRequest`. */
export interface RawValidateJwtSvidRequest {
  audience: string;
  svid: string;
}

/** `google.protobuf.Value` as proto-loader decodes it with `oneofs: true`. */
export interface RawValue {
  kind?: string;
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: RawStruct | null;
  listValue?: { values?: RawValue[] } | null;
}

/** `google.protobuf.Struct`. */
export interface RawStruct {
  fields?: Record<string, RawValue>;
}

/** Raw `ValidateJWTSVIDResponse`. */
export interface RawValidateJwtSvidResponse {
  spiffe_id: string;
  claims: RawStruct | null;
}

/** The loaded service: its definition (for servers) and its client constructor. */
export interface WorkloadService {
  definition: grpc.ServiceDefinition;
  Client: grpc.ServiceClientConstructor;
}

let cached: WorkloadService | undefined;

/**
 * Path of `proto/workload.proto` in the package. Resolved relative to this module so it works
 * from `src/internal` (tests) and `dist/internal` (published; `proto` ships in the package).
 */
export function workloadProtoPath(): string {
  return fileURLToPath(new URL('../../proto/workload.proto', import.meta.url));
}

/** Loads the Workload API service once per process. */
export function loadWorkloadService(): WorkloadService {
  if (cached) return cached;
  const path = workloadProtoPath();
  if (!existsSync(path)) {
    throw new IdentityError('workload-proto-missing', `the Workload API proto is missing at ${path}`);
  }
  const definition = protoLoader.loadSync(path, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    arrays: true,
    objects: true,
    oneofs: true,
  });
  // The standard declares no package: the service sits at the root of the loaded object.
  const loaded = grpc.loadPackageDefinition(definition) as unknown as Record<string, unknown>;
  const Client = loaded['SpiffeWorkloadAPI'] as grpc.ServiceClientConstructor | undefined;
  if (!Client || typeof Client !== 'function') {
    throw new IdentityError('workload-proto-missing', `service SpiffeWorkloadAPI not found in ${path}`);
  }
  cached = { definition: Client.service, Client };
  return cached;
}

const MAX_STRUCT_DEPTH = 32;

/** Converts a decoded `google.protobuf.Value` to plain JSON. */
export function valueToJson(v: RawValue | null | undefined, depth = 0): unknown {
  if (v === null || v === undefined) return null;
  if (depth > MAX_STRUCT_DEPTH) {
    throw new IdentityError(
      'workload-malformed-response',
      `claims nest deeper than ${MAX_STRUCT_DEPTH} levels`,
    );
  }
  switch (v.kind) {
    case 'nullValue':
      return null;
    case 'numberValue':
      return v.numberValue ?? 0;
    case 'stringValue':
      return v.stringValue ?? '';
    case 'boolValue':
      return v.boolValue ?? false;
    case 'structValue':
      return structToJson(v.structValue, depth + 1);
    case 'listValue':
      return (v.listValue?.values ?? []).map((x) => valueToJson(x, depth + 1));
    default:
      return null;
  }
}

/** Converts a decoded `google.protobuf.Struct` to a plain object. */
export function structToJson(s: RawStruct | null | undefined, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) {
    Object.defineProperty(out, k, {
      value: valueToJson(v, depth),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** Converts plain JSON to a `google.protobuf.Value` for encoding. */
export function jsonToValue(v: unknown, depth = 0): RawValue {
  if (depth > MAX_STRUCT_DEPTH) throw new IdentityError('dev-invalid-option', 'claims nest too deeply');
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map((x) => jsonToValue(x, depth + 1)) } };
  if (typeof v === 'object') return { structValue: jsonToStruct(v as Record<string, unknown>, depth + 1) };
  return { stringValue: String(v) };
}

/** Converts a plain object to a `google.protobuf.Struct` for encoding. */
export function jsonToStruct(o: Record<string, unknown>, depth = 0): RawStruct {
  const fields: Record<string, RawValue> = {};
  for (const [k, v] of Object.entries(o)) {
    // defineProperty: a claim named `__proto__` stays a plain member.
    Object.defineProperty(fields, k, {
      value: jsonToValue(v, depth),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return { fields };
}

/**
 * Counts how often each top-level field number occurs in a serialized protobuf message, reading
 * only tags and lengths (nothing is allocated per field). Decoding a message expands tiny
 * repeated entries (an empty `bytes` element is 2 bytes on the wire) into objects of about a
 * hundred bytes each, so count limits must be applied to the wire before the decoder runs.
 *
 * @returns the first field whose count exceeds its bound, or `undefined`.
 * @throws IdentityError `workload-malformed-response` for a wire format we do not accept
 *   (groups, reserved wire types, truncated values).
 */
export function overLimitField(
  bytes: Uint8Array,
  bounds: ReadonlyMap<number, number>,
): { field: number; max: number } | undefined {
  const counts = new Map<number, number>();
  let pos = 0;
  const bad = (detail: string): IdentityError =>
    new IdentityError('workload-malformed-response', `the message is not valid protobuf: ${detail}`);
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= bytes.length) throw bad('truncated varint');
      const b = bytes[pos++] as number;
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 128;
    }
    throw bad('varint longer than 10 bytes');
  };
  while (pos < bytes.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    switch (wire) {
      case 0:
        varint();
        break;
      case 1:
        pos += 8;
        break;
      case 2: {
        const len = varint(); // read first: `pos += varint()` would add to the old position
        pos += len;
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        throw bad(`unsupported wire type ${wire}`);
    }
    if (pos > bytes.length) throw bad('truncated field');
    const max = bounds.get(field);
    if (max !== undefined) {
      const n = (counts.get(field) ?? 0) + 1;
      if (n > max) return { field, max };
      counts.set(field, n);
    }
  }
  return undefined;
}
