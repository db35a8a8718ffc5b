/**
 * Host implementations of the Rego built-in functions that OPA's wasm compiler leaves to the
 * host, plus our own `spiffe.parse_id`.
 *
 * Each function receives its arguments as JSON values (sets arrive as arrays) and returns a JSON
 * value, or throws {@link BuiltinInputError} for an argument OPA would refuse. What an error
 * becomes is decided by the engine: by default the call is undefined (OPA's default,
 * non-strict behaviour), with `strictBuiltinErrors` the whole evaluation fails.
 *
 * The semantics follow OPA v1.22.2's Go implementations; the differential tests in
 * `test/integration/policy/builtins-differential.test.ts` compare every function here with the
 * real `opa eval`.
 */
import { createHash, randomUUID } from 'node:crypto';
import { SpiffeId } from '../spiffeid/index.js';
import { scaleDecimal } from './bigfloat.js';
import { jsonBuffer } from './wasm.js';

/** A host built-in: JSON values in, a JSON value (or `undefined` for "no result") out. */
export type HostBuiltin = (...args: unknown[]) => unknown;

/** Thrown by a built-in for an argument the function does not accept. */
export class BuiltinInputError extends Error {
  override get name(): string {
    return 'BuiltinInputError';
  }
}

/** State a built-in may keep for the duration of one evaluation (OPA's per-query cache). */
export interface EvaluationScope {
  /** `time.now_ns()` value for the current evaluation, fixed on first use. */
  nowNs: bigint | undefined;
  /** `uuid.rfc4122(k)` results by key for the current evaluation. */
  uuids: Map<string, string> | undefined;
}

/**
 * Built-ins that `@open-policy-agent/opa-wasm` 1.10.0 implements itself. Its dispatcher prefers
 * them over host functions with the same name, so these names cannot be overridden.
 */
export const SDK_BUILTINS: readonly string[] = Object.freeze([
  'json.is_valid',
  'regex.split',
  'sprintf',
  'yaml.is_valid',
  'yaml.marshal',
  'yaml.unmarshal',
]);

const utf8 = new TextDecoder('utf-8', { fatal: false });

function fail(detail: string): never {
  throw new BuiltinInputError(detail);
}

function requireString(v: unknown, operand: number): string {
  if (typeof v !== 'string') fail(`operand ${operand} must be a string`);
  return v;
}

/** A string, or an array (a Rego array or set) of strings. */
function stringList(v: unknown, operand: number): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) {
    for (const x of v) if (typeof x !== 'string') fail(`operand ${operand} must contain only strings`);
    return v as string[];
  }
  return fail(`operand ${operand} must be a string, array or set`);
}

/** Whether some string of `search` and some string of `base` satisfy `match`. */
function anyPairMatches(search: unknown, base: unknown, match: (s: string, b: string) => boolean): boolean {
  const a = stringList(search, 1);
  const b = stringList(base, 2);
  return a.some((s) => b.some((p) => match(s, p)));
}

// ---------------------------------------------------------------------------------------------
// base64url as OPA decodes it (Go's padded URL encoding, padding added when missing)

const B64URL = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) {
  B64URL['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.charCodeAt(i)] = i;
}

function decodeBase64Url(input: string): Uint8Array {
  let s = input;
  if (!s.endsWith('=')) {
    switch (s.length % 4) {
      case 0:
        break;
      case 2:
        s += '==';
        break;
      case 3:
        s += '=';
        break;
      default:
        fail('illegal base64url string');
    }
  }
  // Go's decoder skips CR and LF anywhere in the input.
  s = s.replace(/[\r\n]/g, '');
  if (s.length % 4 !== 0) fail('illegal base64url data');
  const pad = s.indexOf('=');
  if (pad !== -1) {
    const tail = s.slice(pad);
    if (pad + tail.length !== s.length || !(tail === '=' || tail === '==')) fail('illegal base64url padding');
    if ((tail === '=' && pad % 4 !== 3) || (tail === '==' && pad % 4 !== 2))
      fail('illegal base64url padding');
  }
  const end = pad === -1 ? s.length : pad;
  const out = new Uint8Array(Math.floor((end * 6) / 8));
  let acc = 0;
  let nbits = 0;
  let o = 0;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? (B64URL[c] ?? -1) : -1;
    if (v < 0) fail('illegal base64url character');
    acc = ((acc << 6) | v) & 0xffffff;
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out[o++] = (acc >> nbits) & 0xff;
    }
  }
  return out.subarray(0, o);
}

function parseJsonObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(utf8.decode(bytes));
  } catch {
    return fail(`${what} is not valid JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

function trimQuotes(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s[a] === '"' || s[a] === "'")) a++;
  while (b > a && (s[b - 1] === '"' || s[b - 1] === "'")) b--;
  return s.slice(a, b);
}

function jwtDecode(token: unknown, depth = 0): unknown[] {
  const t = requireString(token, 1);
  if (depth > 16) fail('nested JWTs too deep');
  if (!t.includes('.')) fail('encoded JWT had no period separators');
  const parts = t.split('.');
  if (parts.length !== 3) fail(`encoded JWT must have 3 sections, found ${parts.length}`);
  const header = parseJsonObject(decodeBase64Url(parts[0] ?? ''), 'JWT header');
  if (Object.hasOwn(header, 'enc')) fail('JWT is a JWE object, which is not supported');
  const payloadBytes = decodeBase64Url(parts[1] ?? '');
  if (Object.hasOwn(header, 'cty')) {
    const cty = header['cty'];
    if (typeof cty !== 'string') fail('JWT cty header must be a string');
    if (cty === 'JWT') return jwtDecode(trimQuotes(utf8.decode(payloadBytes)), depth + 1);
  }
  const payload = parseJsonObject(payloadBytes, 'JWT payload');
  const signature = Buffer.from(decodeBase64Url(parts[2] ?? '')).toString('hex');
  return [header, payload, signature];
}

// ---------------------------------------------------------------------------------------------
// IP addresses and CIDRs as Go's net.ParseCIDR (netip.ParseAddr) accepts them

function validIPv4(s: string): boolean {
  const fields = s.split('.');
  if (fields.length !== 4) return false;
  for (const f of fields) {
    if (!/^[0-9]{1,3}$/.test(f)) return false;
    if (f.length > 1 && f[0] === '0') return false;
    if (Number(f) > 255) return false;
  }
  return true;
}

function validIPv6(s: string): boolean {
  if (s.includes('%')) return false; // zones are not allowed in a CIDR
  let rest = s;
  let groups = 0; // 16-bit groups parsed
  let ellipsis = false;
  if (rest.startsWith('::')) {
    ellipsis = true;
    rest = rest.slice(2);
    if (rest === '') return true;
  }
  while (groups < 8) {
    const m = /^[0-9a-fA-F]{1,4}/.exec(rest);
    if (m === null) return false;
    const after = rest.slice(m[0].length);
    if (after.startsWith('.')) {
      // Embedded IPv4: must take the last 32 bits.
      if (!ellipsis && groups !== 6) return false;
      if (groups + 2 > 8) return false;
      if (!validIPv4(rest)) return false;
      groups += 2;
      rest = '';
      break;
    }
    if (/^[0-9a-fA-F]/.test(after)) return false; // more than four hex digits
    groups += 1;
    rest = after;
    if (rest === '') break;
    if (rest[0] !== ':' || rest.length === 1) return false;
    rest = rest.slice(1);
    if (rest[0] === ':') {
      if (ellipsis) return false;
      ellipsis = true;
      rest = rest.slice(1);
      if (rest === '') break;
    }
  }
  if (rest !== '') return false;
  if (groups < 8) return ellipsis;
  return !ellipsis;
}

/** Tells whether `s` is a CIDR Go's `net.ParseCIDR` accepts. */
function validCidr(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash === -1) return false;
  const addr = s.slice(0, slash);
  const mask = s.slice(slash + 1);
  let bits: number;
  const firstSep = /[.:%]/.exec(addr)?.[0];
  if (firstSep === '.') {
    if (!validIPv4(addr)) return false;
    bits = 32;
  } else if (firstSep === ':') {
    if (!validIPv6(addr)) return false;
    bits = 128;
  } else {
    return false;
  }
  // Go's dtoi: ASCII digits only, leading zeros accepted.
  if (!/^[0-9]+$/.test(mask)) return false;
  return BigInt(mask) <= BigInt(bits);
}

// ---------------------------------------------------------------------------------------------
// Semantic versions as OPA parses them (internal/semver)

interface SemVer {
  major: bigint;
  minor: bigint;
  patch: bigint;
  pre: string;
}

const META_IDENTIFIER = /^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$/;
const INT64_MAX = (1n << 63n) - 1n;

function parseNumeric(s: string): bigint | undefined {
  if (!/^(0|[1-9][0-9]*)$/.test(s)) return undefined;
  const n = BigInt(s);
  return n > INT64_MAX ? undefined : n;
}

function parseSemVer(input: string): SemVer | undefined {
  let version = input.startsWith('v') ? input.slice(1) : input;
  const plus = version.indexOf('+');
  if (plus !== -1) {
    if (!META_IDENTIFIER.test(version.slice(plus + 1))) return undefined;
    version = version.slice(0, plus);
  }
  let pre = '';
  const dash = version.indexOf('-');
  if (dash !== -1) {
    pre = version.slice(dash + 1);
    if (!META_IDENTIFIER.test(pre)) return undefined;
    for (const id of pre.split('.'))
      if (id.length > 1 && id[0] === '0' && /^[0-9]+$/.test(id)) return undefined;
    version = version.slice(0, dash);
  }
  const parts = version.split('.');
  if (parts.length !== 3) return undefined;
  const [major, minor, patch] = parts.map(parseNumeric);
  if (major === undefined || minor === undefined || patch === undefined) return undefined;
  return { major, minor, patch, pre };
}

function cmp<T extends bigint | string>(a: T, b: T): number {
  return a > b ? 1 : a < b ? -1 : 0;
}

/** Go's strconv.Atoi clamps an out-of-range decimal to the int64 bounds. */
function clampedInt(s: string): bigint {
  const n = BigInt(s);
  return n > INT64_MAX ? INT64_MAX : n;
}

function compareSemVer(a: SemVer, b: SemVer): number {
  const core = cmp(a.major, b.major) || cmp(a.minor, b.minor) || cmp(a.patch, b.patch);
  if (core !== 0) return core;
  if (a.pre === b.pre) return 0;
  if (a.pre === '') return 1;
  if (b.pre === '') return -1;
  const as = a.pre.split('.');
  const bs = b.pre.split('.');
  for (let i = 0; ; i++) {
    const x = as[i];
    const y = bs[i];
    if (x === undefined && y === undefined) return 0;
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const xNum = /^[0-9]+$/.test(x);
    const yNum = /^[0-9]+$/.test(y);
    if (xNum && !yNum) return -1;
    if (!xNum && yNum) return 1;
    const c = xNum ? cmp(clampedInt(x), clampedInt(y)) : cmp(x, y);
    if (c !== 0) return c;
  }
}

// ---------------------------------------------------------------------------------------------
// units.parse_bytes

/** Unit suffixes by power: `kb`/`k` are 1000, `kib`/`ki` are 1024, and so on up to `e`. */
const BYTE_UNITS: ReadonlyMap<string, bigint> = new Map([
  ['', 1n],
  ...['k', 'm', 'g', 't', 'p', 'e'].flatMap((prefix, i): [string, bigint][] => {
    const decimal = 1000n ** BigInt(i + 1);
    const binary = 1n << BigInt(10 * (i + 1));
    return [
      [`${prefix}b`, decimal],
      [prefix, decimal],
      [`${prefix}ib`, binary],
      [`${prefix}i`, binary],
    ];
  }),
]);

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';

/** Splits `10.5kib` into `['10.5', 'kib']` with OPA's rules for scientific notation. */
function splitAmount(s: string): [string, string] {
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (!isDigit(c) && c !== '.' && c !== 'e' && c !== 'E' && c !== '+' && c !== '-') {
      return [s.slice(0, i), s.slice(i)];
    }
    if (c === 'e' || c === 'E') {
      const next = s[i + 1];
      if (next === undefined || (!isDigit(next) && next !== '+' && next !== '-'))
        return [s.slice(0, i), s.slice(i)];
      if (next === '+' || next === '-') i++;
      let end = i + 1;
      while (isDigit(s[end])) end++;
      if (end - (i + 1) > 6) fail('exponent too large');
    }
  }
  return [s, ''];
}

function parseBytes(v: unknown): ArrayBuffer {
  const s = requireString(v, 1).toLowerCase().replaceAll('"', '');
  if (s.includes(' ')) fail('spaces not allowed in resource strings');
  const [num, unit] = splitAmount(s);
  if (num === '') fail('no byte amount provided');
  const factor = BYTE_UNITS.get(unit);
  if (factor === undefined) fail(`byte unit ${unit} not recognized`);
  const n = scaleDecimal(num, factor);
  if (n === undefined) fail('could not parse byte amount to a number');
  return jsonBuffer(n.toString());
}

// ---------------------------------------------------------------------------------------------

/** Default wall clock for `time.now_ns`: milliseconds since the epoch, in nanoseconds. */
export function systemClockNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/**
 * Names and implementations of the host built-ins, bound to a per-evaluation scope.
 *
 * @param scope - reset by the engine before each evaluation.
 * @param clock - wall clock in nanoseconds since the epoch.
 */
export function createHostBuiltins(scope: EvaluationScope, clock: () => bigint): Record<string, HostBuiltin> {
  return {
    'time.now_ns': () => {
      if (scope.nowNs === undefined) scope.nowNs = clock();
      return jsonBuffer(scope.nowNs.toString());
    },
    'io.jwt.decode': (token) => jwtDecode(token),
    'strings.any_prefix_match': (search, base) => anyPairMatches(search, base, (s, p) => s.startsWith(p)),
    'strings.any_suffix_match': (search, base) => anyPairMatches(search, base, (s, p) => s.endsWith(p)),
    'net.cidr_is_valid': (cidr) => typeof cidr === 'string' && validCidr(cidr),
    'semver.is_valid': (v) => typeof v === 'string' && parseSemVer(v) !== undefined,
    'semver.compare': (a, b) => {
      const x = parseSemVer(requireString(a, 1));
      if (x === undefined) fail(`operand 1: string ${String(a)} is not a valid SemVer`);
      const y = parseSemVer(requireString(b, 2));
      if (y === undefined) fail(`operand 2: string ${String(b)} is not a valid SemVer`);
      return compareSemVer(x, y);
    },
    'units.parse_bytes': (s) => parseBytes(s),
    'uuid.rfc4122': (k) => {
      const key = JSON.stringify(k) ?? 'undefined';
      if (scope.uuids === undefined) scope.uuids = new Map();
      let id = scope.uuids.get(key);
      if (id === undefined) {
        id = randomUUID();
        scope.uuids.set(key, id);
      }
      return id;
    },
    'crypto.sha256': (s) => createHash('sha256').update(requireString(s, 1), 'utf8').digest('hex'),
    'hex.encode': (s) => Buffer.from(requireString(s, 1), 'utf8').toString('hex'),
    'spiffe.parse_id': (s) => {
      let id: SpiffeId;
      try {
        id = SpiffeId.parse(requireString(s, 1));
      } catch (err) {
        return fail(err instanceof Error ? err.message : 'invalid SPIFFE ID');
      }
      return { trust_domain: id.trustDomain.name, path: id.path, segments: id.segments() };
    },
  };
}

/** Names of the host built-ins this package implements. */
export const HOST_BUILTINS: readonly string[] = Object.freeze(
  Object.keys(createHostBuiltins({ nowNs: undefined, uuids: undefined }, systemClockNs)).sort(),
);
