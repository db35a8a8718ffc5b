import {
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  randomBytes,
  sign,
  verify,
  X509Certificate,
} from 'node:crypto';
import type { BundleSet, X509Bundle } from '../bundle/index.js';
import { IdentityError } from '../errors/index.js';
import { pemTextOf } from '../internal/pem-bytes.js';
import {
  type GeneralSubtree,
  type NameConstraintsInfo,
  OID,
  PARSED_EXTENSIONS,
  type ParsedCertificate,
  parseCertificateDer,
  parseRsaPssParams,
} from '../internal/x509-ext.js';
import { SpiffeId, type TrustDomain } from '../spiffeid/index.js';
import { readPemBlocks, splitDerSequences, toPem } from './encoding.js';
import { SVID_LIMITS } from './limits.js';
import { checkHint, quote } from './options.js';

/** A certificate together with what we parsed from its DER. */
interface Cert {
  readonly x509: X509Certificate;
  readonly info: ParsedCertificate;
}

/** Input accepted for a certificate chain. */
export type CertificateChainInput = string | Uint8Array | readonly (X509Certificate | Uint8Array)[];

/** Options of {@link X509Svid.parse}. */
export interface X509SvidParseOptions {
  /** Operator-chosen label from the Workload API (at most 1024 bytes). */
  hint?: string | undefined;
}

/** Options of {@link verifyX509Svid}. */
export interface VerifyX509SvidOptions {
  /** The clock used for validity checks; defaults to the current time. */
  now?: Date | undefined;
}

/** An X509-SVID as PEM text, from {@link X509Svid.marshal}. */
export interface X509SvidPem {
  /** The chain, leaf first, as `CERTIFICATE` blocks. */
  certificatesPem: string;
  /** The private key as a PKCS#8 `PRIVATE KEY` block. Secret. */
  privateKeyPem: string;
}

/** An X509-SVID in the Workload API encoding, from {@link X509Svid.marshalDer}. */
export interface X509SvidDer {
  /** The chain, leaf first, as concatenated DER certificates. */
  certificatesDer: Uint8Array;
  /** The private key as PKCS#8 DER. Secret. */
  privateKeyDer: Uint8Array;
}

/** Result of {@link verifyX509Svid}. */
export interface X509SvidVerification {
  /** The SPIFFE ID of the verified leaf. */
  spiffeId: SpiffeId;
  /** The verified path: leaf, the intermediates used, and the bundle authority it ends at. */
  chain: X509Certificate[];
}

const MAX_CHAIN = SVID_LIMITS.x509MaxChainLength;
const MAX_CERT_BYTES = SVID_LIMITS.x509MaxCertificateBytes;
/**
 * Path-search nodes visited per verification. Signature checks are memoised per certificate
 * pair; the budget stops crafted chains whose certificates all claim to issue each other.
 */
const PATH_SEARCH_BUDGET = 256;

const parsedCache = new WeakMap<X509Certificate, ParsedCertificate>();
const publicKeyCache = new WeakMap<X509Certificate, KeyObject>();

function fail(
  code: string,
  detail: string,
  details?: Record<string, unknown>,
  cause?: unknown,
): IdentityError {
  return new IdentityError(code, detail, { details, cause });
}

function toBytes(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Wraps a node:crypto certificate with our DER parse (cached per object). */
function inspect(x509: X509Certificate): Cert {
  let info = parsedCache.get(x509);
  if (info === undefined) {
    const raw = x509.raw;
    if (raw.byteLength > MAX_CERT_BYTES) {
      throw fail('x509svid-certificate-too-large', `a certificate is at most ${MAX_CERT_BYTES} bytes`, {
        size: raw.byteLength,
      });
    }
    info = parseCertificateDer(toBytes(raw));
    parsedCache.set(x509, info);
  }
  return { x509, info };
}

function certFromDer(der: Uint8Array): Cert {
  if (der.byteLength > MAX_CERT_BYTES) {
    throw fail('x509svid-certificate-too-large', `a certificate is at most ${MAX_CERT_BYTES} bytes`, {
      size: der.byteLength,
    });
  }
  // Our strict parse first: it also rejects PEM text, which node's constructor would accept.
  const info = parseCertificateDer(der);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch (err) {
    throw fail(
      'x509svid-malformed-certificate',
      'node:crypto could not parse the certificate',
      undefined,
      err,
    );
  }
  parsedCache.set(x509, info);
  return { x509, info };
}

/** Decodes a chain given as PEM text, concatenated DER, or a list of certificates / DER. */
function decodeChain(input: unknown): Cert[] {
  let certs: Cert[];
  if (input instanceof Uint8Array) input = pemTextOf(input) ?? input;
  if (typeof input === 'string') {
    if (input.length > SVID_LIMITS.x509MaxPemChars) {
      throw fail(
        'x509svid-chain-too-large',
        `PEM chain text is at most ${SVID_LIMITS.x509MaxPemChars} characters`,
      );
    }
    const blocks = readPemBlocks(input, 'x509svid-malformed-pem', MAX_CHAIN, 'x509svid-chain-too-long');
    for (const block of blocks) {
      if (block.label !== 'CERTIFICATE') {
        throw fail('x509svid-malformed-pem', `expected only CERTIFICATE blocks, found "${block.label}"`);
      }
    }
    certs = blocks.map((block) => certFromDer(block.der));
  } else if (input instanceof Uint8Array) {
    if (input.byteLength > MAX_CHAIN * MAX_CERT_BYTES) {
      throw fail('x509svid-chain-too-large', `DER chain is at most ${MAX_CHAIN * MAX_CERT_BYTES} bytes`);
    }
    certs = splitDerSequences(
      input,
      'x509svid-malformed-certificate',
      MAX_CHAIN,
      'x509svid-chain-too-long',
    ).map(certFromDer);
  } else if (Array.isArray(input)) {
    if (input.length > MAX_CHAIN) {
      throw fail('x509svid-chain-too-long', `a chain holds at most ${MAX_CHAIN} certificates`, {
        length: input.length,
      });
    }
    certs = input.map((item: unknown) => {
      if (item instanceof X509Certificate) return inspect(item);
      if (item instanceof Uint8Array) return certFromDer(item);
      throw fail('x509svid-invalid-option', 'chain entries must be X509Certificate or DER Uint8Array');
    });
  } else {
    throw fail(
      'x509svid-invalid-option',
      'the chain must be PEM text, DER bytes or an array of certificates',
    );
  }
  if (certs.length === 0) throw fail('x509svid-empty-chain', 'the certificate chain is empty');
  return certs;
}

const ALLOWED_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);
const PSS_HASHES = new Set<string>([OID.sha256, OID.sha384, OID.sha512]);
const SIGNATURE_ALGORITHMS = new Set<string>([
  OID.ecdsaWithSha256,
  OID.ecdsaWithSha384,
  OID.ecdsaWithSha512,
  OID.sha256WithRsa,
  OID.sha384WithRsa,
  OID.sha512WithRsa,
  OID.rsassaPss,
  OID.ed25519,
]);

/** The certificate's public key; an undecodable key is a malformed certificate. */
function publicKeyOf(cert: Cert, role: string): KeyObject {
  // The getter builds a new KeyObject on every read; bundle authorities are read on every call.
  const cached = publicKeyCache.get(cert.x509);
  if (cached !== undefined) return cached;
  try {
    const key = cert.x509.publicKey;
    publicKeyCache.set(cert.x509, key);
    return key;
  } catch (err) {
    throw fail('x509svid-malformed-certificate', `${role} public key cannot be decoded`, { role }, err);
  }
}

/** Public keys we accept anywhere in a chain: RSA 2048–8192, P-256/384/521, Ed25519. */
function checkPublicKey(cert: Cert, role: string): KeyObject {
  const key = publicKeyOf(cert, role);
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa' || type === 'rsa-pss') {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048 || bits > 8192) {
      throw fail('x509svid-weak-key', `${role} RSA key has ${bits} bits; 2048 to 8192 are accepted`, {
        role,
        bits,
      });
    }
    return key;
  }
  if (type === 'ec') {
    if (!ALLOWED_CURVES.has(details.namedCurve ?? '')) {
      throw fail('x509svid-unsupported-key', `${role} EC key uses curve ${details.namedCurve ?? '?'}`, {
        role,
      });
    }
    return key;
  }
  if (type === 'ed25519') return key;
  throw fail('x509svid-unsupported-key', `${role} key type ${type ?? '?'} is not accepted`, { role });
}

/** Signature algorithms we accept on certificates whose signature we verify. */
function checkSignatureAlgorithm(cert: Cert, role: string): void {
  const oid = cert.info.signatureAlgorithm;
  if (!SIGNATURE_ALGORITHMS.has(oid)) {
    throw fail('x509svid-unsupported-signature-algorithm', `${role} is signed with algorithm ${oid}`, {
      role,
      oid,
    });
  }
  if (oid === OID.rsassaPss) {
    const { hash, mgfHash } = parseRsaPssParams(cert.info.signatureAlgorithmParams);
    if (!PSS_HASHES.has(hash) || hash !== mgfHash) {
      throw fail('x509svid-unsupported-signature-algorithm', `${role} uses RSASSA-PSS with hash ${hash}`, {
        role,
      });
    }
  }
}

function checkCriticalExtensions(cert: Cert, role: string): void {
  for (const ext of cert.info.extensions) {
    if (ext.critical && !PARSED_EXTENSIONS.has(ext.oid)) {
      throw fail(
        'x509svid-unhandled-critical-extension',
        `${role} has critical extension ${ext.oid}, which this verifier does not process`,
        { role, oid: ext.oid },
      );
    }
  }
}

function checkSanCount(cert: Cert, role: string): void {
  const count = cert.info.subjectAltName?.names.length ?? 0;
  if (count > SVID_LIMITS.x509MaxSanEntries) {
    throw fail(
      'x509svid-too-many-sans',
      `${role} has ${count} SAN entries; at most ${SVID_LIMITS.x509MaxSanEntries}`,
      {
        role,
        count,
      },
    );
  }
}

function uriSans(cert: Cert): string[] {
  const names = cert.info.subjectAltName?.names ?? [];
  const out: string[] = [];
  for (const name of names) {
    if (name.kind === 'uniformResourceIdentifier') out.push(name.value ?? '');
  }
  return out;
}

/** Applies the X509-SVID leaf rules (§3.1, §4.1, §4.3, §4.4, §5.2) and returns the SPIFFE ID. */
function checkLeaf(cert: Cert): SpiffeId {
  checkSanCount(cert, 'leaf');
  const uris = uriSans(cert);
  if (uris.length === 0) {
    throw fail(
      'x509svid-leaf-missing-uri-san',
      'leaf certificate has no URI SAN (needs exactly one SPIFFE ID)',
    );
  }
  if (uris.length > 1) {
    throw fail(
      'x509svid-leaf-multiple-uri-sans',
      `leaf certificate has ${uris.length} URI SANs; exactly one allowed`,
      {
        count: uris.length,
      },
    );
  }
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(uris[0]!);
  } catch (err) {
    throw fail('x509svid-leaf-invalid-spiffe-id', 'leaf URI SAN is not a valid SPIFFE ID', undefined, err);
  }
  const details = { spiffeId: id.toString() };
  if (id.isRoot()) {
    throw fail(
      'x509svid-leaf-root-path',
      'leaf SPIFFE ID has no path (a trust domain ID is not a workload)',
      details,
    );
  }
  if (cert.info.basicConstraints?.cA === true) {
    throw fail('x509svid-leaf-is-ca', 'leaf certificate has CA=true', details);
  }
  const keyUsage = cert.info.keyUsage;
  if (keyUsage === undefined) {
    throw fail('x509svid-leaf-missing-key-usage', 'leaf certificate has no keyUsage extension', details);
  }
  if (!keyUsage.usages.has('digitalSignature')) {
    throw fail('x509svid-leaf-no-digital-signature', 'leaf keyUsage lacks digitalSignature', details);
  }
  if (keyUsage.usages.has('keyCertSign')) {
    throw fail('x509svid-leaf-key-cert-sign', 'leaf keyUsage has keyCertSign', details);
  }
  if (keyUsage.usages.has('cRLSign')) {
    throw fail('x509svid-leaf-crl-sign', 'leaf keyUsage has cRLSign', details);
  }
  const eku = cert.info.extKeyUsage;
  if (eku !== undefined && !(eku.oids.includes(OID.ekuServerAuth) && eku.oids.includes(OID.ekuClientAuth))) {
    throw fail(
      'x509svid-leaf-bad-extended-key-usage',
      'leaf extKeyUsage is present but lacks serverAuth and clientAuth',
      details,
    );
  }
  checkCriticalExtensions(cert, 'leaf');
  checkSignatureAlgorithm(cert, 'leaf');
  checkPublicKey(cert, 'leaf');
  return id;
}

/** Applies the signing-certificate rules (§3.2, §4.1, §4.3) to a presented intermediate. */
function checkIntermediate(cert: Cert, index: number): void {
  const role = `intermediate #${index}`;
  checkSanCount(cert, role);
  checkCriticalExtensions(cert, role);
  if (cert.info.basicConstraints?.cA !== true) {
    throw fail('x509svid-intermediate-not-ca', `${role} is not a CA (basicConstraints cA is not true)`, {
      index,
    });
  }
  if (cert.info.keyUsage?.usages.has('keyCertSign') !== true) {
    throw fail('x509svid-intermediate-no-key-cert-sign', `${role} keyUsage lacks keyCertSign`, { index });
  }
  for (const uri of uriSans(cert)) {
    if (!/^spiffe:/i.test(uri)) continue;
    let id: SpiffeId;
    try {
      id = SpiffeId.parse(uri);
    } catch (err) {
      throw fail(
        'x509svid-intermediate-invalid-spiffe-id',
        `${role} URI SAN is not a valid SPIFFE ID`,
        { index },
        err,
      );
    }
    if (!id.isRoot()) {
      throw fail(
        'x509svid-intermediate-has-path',
        `${role} SPIFFE ID ${id} has a path; signing certificates must not`,
        {
          index,
          spiffeId: id.toString(),
        },
      );
    }
  }
  const eku = cert.info.extKeyUsage;
  if (
    eku !== undefined &&
    !eku.oids.includes(OID.ekuAny) &&
    !(eku.oids.includes(OID.ekuServerAuth) && eku.oids.includes(OID.ekuClientAuth))
  ) {
    throw fail(
      'x509svid-intermediate-bad-extended-key-usage',
      `${role} extKeyUsage allows neither serverAuth+clientAuth nor any usage`,
      { index },
    );
  }
  checkSignatureAlgorithm(cert, role);
  checkPublicKey(cert, role);
}

function checkValidity(cert: Cert, nowMs: number, role: string): void {
  if (nowMs < cert.info.notBefore.getTime()) {
    throw fail('x509svid-not-yet-valid', `${role} is not valid before ${cert.info.notBefore.toISOString()}`, {
      role,
      notBefore: cert.info.notBefore.toISOString(),
    });
  }
  if (nowMs > cert.info.notAfter.getTime()) {
    throw fail('x509svid-expired', `${role} expired at ${cert.info.notAfter.toISOString()}`, {
      role,
      notAfter: cert.info.notAfter.toISOString(),
    });
  }
}

function hostMatches(host: string, constraint: string, kind: 'uri' | 'dns'): boolean {
  const h = host.toLowerCase();
  const c = constraint.toLowerCase();
  if (c.startsWith('.')) return h.length > c.length && h.endsWith(c);
  if (h === c) return true;
  // RFC 5280 §4.2.1.10: a dNSName constraint also admits names with more labels on the left.
  return kind === 'dns' && h.endsWith(`.${c}`);
}

function subtreeValue(subtree: GeneralSubtree, role: string): { kind: 'uri' | 'dns'; value: string } {
  const { base } = subtree;
  const kind =
    base.kind === 'uniformResourceIdentifier'
      ? 'uri'
      : base.kind === 'dNSName'
        ? ('dns' as const)
        : undefined;
  if (kind === undefined || subtree.minimum !== 0 || subtree.maximum !== undefined || !base.value) {
    throw fail(
      'x509svid-unsupported-name-constraint',
      `${role} has a ${base.kind} name constraint; only URI and DNS constraints are evaluated`,
      { role, kind: base.kind },
    );
  }
  return { kind, value: base.value };
}

/** Trust domain of a SPIFFE URI, or undefined for any other URI (never matches a constraint). */
function uriHost(uri: string): string | undefined {
  if (!/^spiffe:/i.test(uri)) return undefined;
  try {
    return SpiffeId.parse(uri).trustDomain.name;
  } catch {
    return undefined;
  }
}

/** Checks the URI and DNS SANs of `subject` against one CA's nameConstraints. */
function checkNameConstraints(
  subject: Cert,
  subjectRole: string,
  nc: NameConstraintsInfo,
  caRole: string,
): void {
  const permitted = nc.permitted.map((s) => subtreeValue(s, caRole));
  const excluded = nc.excluded.map((s) => subtreeValue(s, caRole));
  const names = subject.info.subjectAltName?.names ?? [];
  for (const name of names) {
    const kind =
      name.kind === 'uniformResourceIdentifier' ? 'uri' : name.kind === 'dNSName' ? 'dns' : undefined;
    if (kind === undefined) continue;
    const raw = name.value ?? '';
    const host = kind === 'uri' ? uriHost(raw) : raw;
    const permittedOfKind = permitted.filter((c) => c.kind === kind);
    const excludedOfKind = excluded.filter((c) => c.kind === kind);
    if (permittedOfKind.length === 0 && excludedOfKind.length === 0) continue;
    const violation = (why: string): IdentityError =>
      fail('x509svid-name-constraint-violation', `${subjectRole} name ${quote(raw)} ${why} of ${caRole}`, {
        name: raw,
        ca: caRole,
      });
    if (host === undefined) throw violation('cannot be checked against the URI name constraints');
    if (permittedOfKind.length > 0 && !permittedOfKind.some((c) => hostMatches(host, c.value, kind))) {
      throw violation('is outside the permitted subtrees');
    }
    if (excludedOfKind.some((c) => hostMatches(host, c.value, kind))) {
      throw violation('is inside an excluded subtree');
    }
  }
}

/**
 * Path-level rules over `path` (leaf first, issuers after): pathLenConstraint and name
 * constraints of every CA apply to every certificate below it.
 */
function checkPathConstraints(path: readonly Cert[], roles: readonly string[]): void {
  for (let k = 1; k < path.length; k++) {
    const ca = path[k]!;
    const pathLen = ca.info.basicConstraints?.pathLen;
    // Intermediates between this CA and the leaf (self-issued ones are counted too: stricter).
    if (pathLen !== undefined && k - 1 > pathLen) {
      throw fail(
        'x509svid-path-length-exceeded',
        `${roles[k]} allows ${pathLen} intermediates below it, the path has ${k - 1}`,
        { role: roles[k], pathLen },
      );
    }
    const nc = ca.info.nameConstraints;
    if (nc !== undefined) {
      for (let j = 0; j < k; j++) checkNameConstraints(path[j]!, roles[j]!, nc, roles[k]!);
    }
  }
}

function rolesOf(length: number, anchored: boolean): string[] {
  return Array.from({ length }, (_, i) =>
    i === 0 ? 'leaf' : anchored && i === length - 1 ? 'bundle authority' : `intermediate #${i}`,
  );
}

function readNow(opts: VerifyX509SvidOptions | undefined): number {
  const now = opts?.now;
  if (now === undefined) return Date.now();
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw fail('x509svid-invalid-option', 'opts.now must be a valid Date');
  }
  return now.getTime();
}

/** Selects the X.509 authorities of `td` from a bundle set or a single bundle. */
function authoritiesFor(bundles: BundleSet | X509Bundle, td: TrustDomain): readonly X509Certificate[] {
  const source = bundles as Partial<BundleSet> & Partial<X509Bundle>;
  let bundle: X509Bundle | undefined;
  if (typeof source.getX509Bundle === 'function') {
    bundle = source.getX509Bundle(td);
  } else if (source.trustDomain !== undefined && Array.isArray(source.authorities)) {
    bundle = source.trustDomain.equals(td) ? (bundles as X509Bundle) : undefined;
  } else {
    throw fail('x509svid-invalid-option', 'bundles must be a BundleSet or an X509Bundle');
  }
  if (bundle === undefined) {
    throw fail('x509svid-no-bundle', `no X.509 bundle for trust domain ${td.name}`, { trustDomain: td.name });
  }
  return bundle.authorities;
}

/**
 * Verifies an X509-SVID chain, as a TLS peer or any relying party would: leaf rules, signing
 * certificate rules, and a path from the leaf through the given intermediates to an authority in
 * the X.509 bundle of the **leaf's own trust domain** (never another trust domain's roots).
 *
 * Checked, in order: chain size; the leaf rules (exactly one URI SAN with a valid SPIFFE ID and a
 * non-root path, CA=false, keyUsage with digitalSignature and without keyCertSign/cRLSign,
 * extKeyUsage with serverAuth and clientAuth when present); every presented intermediate is a CA
 * with keyCertSign whose SPIFFE ID, if any, has no path; no unprocessed critical extension;
 * accepted key types and signature algorithms; validity of every certificate at `opts.now`; a
 * signature path to the bundle (intermediates may come in any order, the last one may be the
 * root itself); pathLenConstraint; URI and DNS name constraints.
 *
 * @param chain - leaf first: PEM text, concatenated DER, or a list of certificates/DER.
 * @param bundles - a {@link BundleSet} (the leaf's trust domain selects the bundle) or one
 *   X509Bundle, which must belong to the leaf's trust domain.
 * @param opts - `now`: the clock for validity checks.
 * @returns the leaf's SPIFFE ID and the verified path (ending at the bundle authority).
 * @throws IdentityError with an `x509svid-` code naming the rule that failed.
 *
 * @example
 * ```ts
 * const { spiffeId } = verifyX509Svid(peerDerChain, bundleSet);
 * if (!spiffeId.equals('spiffe://example.org/billing')) throw new Error('unexpected peer');
 * ```
 */
export function verifyX509Svid(
  chain: CertificateChainInput,
  bundles: BundleSet | X509Bundle,
  opts?: VerifyX509SvidOptions,
): X509SvidVerification {
  const nowMs = readNow(opts);
  const certs = decodeChain(chain);
  const leaf = certs[0]!;
  const id = checkLeaf(leaf);
  const authorities = authoritiesFor(bundles, id.trustDomain);
  checkValidity(leaf, nowMs, 'leaf');
  const intermediates = certs.slice(1);
  intermediates.forEach((cert, i) => {
    checkIntermediate(cert, i + 1);
    checkValidity(cert, nowMs, `intermediate #${i + 1}`);
  });
  const anchors = authorities.map(inspect);
  const path = findPath(leaf, intermediates, anchors, nowMs);
  return { spiffeId: id, chain: path.map((c) => c.x509) };
}

/** Depth-first search for a signature path from `leaf` to one of `anchors`. */
function findPath(leaf: Cert, pool: readonly Cert[], anchors: readonly Cert[], nowMs: number): Cert[] {
  const memo = new Map<Cert, Map<Cert, boolean>>();
  const issued = (child: Cert, parent: Cert): boolean => {
    let row = memo.get(child);
    if (row === undefined) {
      row = new Map();
      memo.set(child, row);
    }
    let ok = row.get(parent);
    if (ok === undefined) {
      try {
        ok = child.x509.checkIssued(parent.x509) && child.x509.verify(publicKeyOf(parent, 'issuer'));
      } catch {
        ok = false;
      }
      row.set(parent, ok);
    }
    return ok;
  };
  let budget = PATH_SEARCH_BUDGET;
  let firstError: IdentityError | undefined;
  const path: Cert[] = [leaf];
  const used = new Set<Cert>();
  const search = (current: Cert): Cert[] | undefined => {
    if (--budget < 0) return undefined;
    for (const anchor of anchors) {
      if (!issued(current, anchor)) continue;
      const candidate = [...path, anchor];
      try {
        const roles = rolesOf(candidate.length, true);
        if (anchor.info.basicConstraints?.cA !== true) {
          throw fail('x509svid-authority-not-ca', 'the bundle authority that issued the chain is not a CA');
        }
        checkValidity(anchor, nowMs, 'bundle authority');
        checkPublicKey(anchor, 'bundle authority');
        checkPathConstraints(candidate, roles);
        return candidate;
      } catch (err) {
        if (!(err instanceof IdentityError)) throw err;
        firstError ??= err;
      }
    }
    for (const next of pool) {
      if (used.has(next) || !issued(current, next)) continue;
      used.add(next);
      path.push(next);
      const found = search(next);
      if (found !== undefined) return found;
      path.pop();
      used.delete(next);
    }
    return undefined;
  };
  const found = search(leaf);
  if (found !== undefined) return found;
  if (firstError !== undefined) throw firstError;
  throw fail(
    'x509svid-untrusted-chain',
    budget < 0
      ? 'gave up searching for a path to the bundle (too many candidate certificates)'
      : 'no signature path from the leaf to an authority of its trust domain bundle',
  );
}

/**
 * Applies the X509-SVID leaf rules to one certificate and returns its SPIFFE ID, without any
 * chain or bundle check. For TLS authorizers that already hold a verified chain, and for tools.
 *
 * @param cert - the leaf certificate (node:crypto) or its DER.
 * @returns the SPIFFE ID of the leaf.
 * @throws IdentityError with an `x509svid-leaf-` code (or a key/algorithm/extension code).
 */
export function parseX509SvidLeaf(cert: X509Certificate | Uint8Array): SpiffeId {
  if (cert instanceof X509Certificate) return checkLeaf(inspect(cert));
  if (cert instanceof Uint8Array) return checkLeaf(certFromDer(cert));
  throw fail('x509svid-invalid-option', 'expected an X509Certificate or DER bytes');
}

function decodePrivateKey(input: unknown): KeyObject {
  const bad = (detail: string, cause?: unknown): IdentityError =>
    fail('x509svid-malformed-private-key', detail, undefined, cause);
  if (input instanceof Uint8Array) input = pemTextOf(input) ?? input;
  if (typeof input === 'string') {
    if (input.length > 4 * MAX_CERT_BYTES) throw bad('private key PEM is too large');
    const blocks = readPemBlocks(
      input,
      'x509svid-malformed-private-key',
      1,
      'x509svid-malformed-private-key',
    );
    const block = blocks[0];
    if (block === undefined) throw bad('no PEM block found');
    const types: Record<string, 'pkcs8' | 'sec1' | 'pkcs1'> = {
      'PRIVATE KEY': 'pkcs8',
      'EC PRIVATE KEY': 'sec1',
      'RSA PRIVATE KEY': 'pkcs1',
    };
    const type = Object.hasOwn(types, block.label) ? types[block.label] : undefined;
    if (type === undefined) throw bad(`unsupported private key PEM label "${block.label}"`);
    try {
      return createPrivateKey({ key: Buffer.from(block.der), format: 'der', type });
    } catch (err) {
      throw bad('the private key could not be decoded', err);
    }
  }
  if (input instanceof Uint8Array) {
    if (input.byteLength > MAX_CERT_BYTES) throw bad('private key DER is too large');
    try {
      return createPrivateKey({ key: Buffer.from(input), format: 'der', type: 'pkcs8' });
    } catch (err) {
      throw bad('the private key is not PKCS#8 DER', err);
    }
  }
  throw fail('x509svid-invalid-option', 'the private key must be PEM text or PKCS#8 DER bytes');
}

function spkiOf(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' });
}

/**
 * Whether `privateKey` is the private half of `publicKey`: the public keys must be equal, and a
 * signature made with the private key must verify (a PKCS#8 key can embed a public key that does
 * not belong to its private scalar; OpenSSL then reports the embedded one).
 */
function keyPairMatches(privateKey: KeyObject, publicKey: KeyObject): boolean {
  try {
    if (!spkiOf(createPublicKey(privateKey)).equals(spkiOf(publicKey))) return false;
    const challenge = randomBytes(32);
    const hash = privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
    return verify(hash, challenge, publicKey, sign(hash, challenge, privateKey));
  } catch {
    return false;
  }
}

let makeX509Svid: (
  id: SpiffeId,
  certs: X509Certificate[],
  key: KeyObject,
  expiresAt: Date,
  hint?: string,
) => X509Svid;

/**
 * An X509-SVID of this workload: the certificate chain (leaf first) and its private key.
 *
 * Instances come from {@link X509Svid.parse}, which checks the leaf rules, the signing-certificate
 * rules of the intermediates, that each certificate is signed by the next, and that the private
 * key belongs to the leaf. It does not check validity dates or trust (the Workload API is the
 * source of your own SVID); use {@link verifyX509Svid} for material from a peer.
 *
 * @example
 * ```ts
 * const svid = X509Svid.parse(readFileSync('svid.pem', 'utf8'), readFileSync('svid_key.pem', 'utf8'));
 * svid.spiffeId.toString(); // 'spiffe://example.org/web'
 * const { certificatesPem, privateKeyPem } = svid.marshal();
 * ```
 */
export class X509Svid {
  /** The SPIFFE ID in the leaf's URI SAN. */
  readonly spiffeId: SpiffeId;
  /** Leaf first, then intermediates (as given). */
  readonly certificates: readonly X509Certificate[];
  /** The leaf's private key. */
  readonly privateKey: KeyObject;
  /** The earliest `notAfter` of the chain: when this SVID stops verifying. */
  readonly expiresAt: Date;
  /** The Workload API hint, if any. */
  readonly hint?: string;

  /** @internal Use {@link X509Svid.parse}. */
  private constructor(
    id: SpiffeId,
    certs: X509Certificate[],
    key: KeyObject,
    expiresAt: Date,
    hint?: string,
  ) {
    this.spiffeId = id;
    this.certificates = Object.freeze(certs);
    this.privateKey = key;
    this.expiresAt = expiresAt;
    if (hint !== undefined) this.hint = hint;
    Object.freeze(this);
  }

  static {
    makeX509Svid = (id, certs, key, expiresAt, hint) => new X509Svid(id, certs, key, expiresAt, hint);
  }

  /**
   * Parses an X509-SVID from its chain and private key.
   *
   * @param chain - PEM text (CERTIFICATE blocks, leaf first) or concatenated DER certificates
   *   (the Workload API `x509_svid` field).
   * @param key - PEM (`PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY`) or PKCS#8 DER (the
   *   Workload API `x509_svid_key` field).
   * @param opts - `hint`: the Workload API hint (at most 1024 bytes).
   * @returns the SVID.
   * @throws IdentityError with an `x509svid-` code: malformed input, a leaf or signing-cert rule,
   *   `x509svid-chain-not-linked`, or `x509svid-key-mismatch`.
   */
  static parse(chain: string | Uint8Array, key: string | Uint8Array, opts?: X509SvidParseOptions): X509Svid {
    const hint = checkHint(opts?.hint, 'x509svid-invalid-option');
    if (typeof chain !== 'string' && !(chain instanceof Uint8Array)) {
      throw fail('x509svid-invalid-option', 'the chain must be PEM text or DER bytes');
    }
    const certs = decodeChain(chain);
    const id = checkLeaf(certs[0]!);
    for (let i = 1; i < certs.length; i++) checkIntermediate(certs[i]!, i);
    for (let i = 0; i + 1 < certs.length; i++) {
      const child = certs[i]!.x509;
      const parent = certs[i + 1]!.x509;
      let linked = false;
      try {
        linked = child.checkIssued(parent) && child.verify(parent.publicKey);
      } catch {
        linked = false;
      }
      if (!linked) {
        throw fail('x509svid-chain-not-linked', `certificate #${i} is not signed by certificate #${i + 1}`, {
          index: i,
        });
      }
    }
    checkPathConstraints(certs, rolesOf(certs.length, false));
    const privateKey = decodePrivateKey(key);
    if (!keyPairMatches(privateKey, checkPublicKey(certs[0]!, 'leaf'))) {
      throw fail('x509svid-key-mismatch', 'the private key does not belong to the leaf certificate', {
        spiffeId: id.toString(),
      });
    }
    const expiresAt = new Date(Math.min(...certs.map((c) => c.info.notAfter.getTime())));
    return makeX509Svid(
      id,
      certs.map((c) => c.x509),
      privateKey,
      expiresAt,
      hint,
    );
  }

  /** The leaf certificate (`certificates[0]`). */
  get leaf(): X509Certificate {
    return this.certificates[0]!;
  }

  /**
   * Encodes the SVID as PEM: the chain (leaf first) and the private key as PKCS#8.
   *
   * @returns `certificatesPem` and `privateKeyPem`; the latter is secret.
   */
  marshal(): X509SvidPem {
    return {
      certificatesPem: this.certificates.map((c) => toPem('CERTIFICATE', toBytes(c.raw))).join(''),
      privateKeyPem: this.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    };
  }

  /**
   * Encodes the SVID the way the Workload API carries it: concatenated DER certificates and a
   * PKCS#8 DER private key.
   *
   * @returns `certificatesDer` and `privateKeyDer`; the latter is secret.
   */
  marshalDer(): X509SvidDer {
    return {
      certificatesDer: toBytes(Buffer.concat(this.certificates.map((c) => c.raw))),
      privateKeyDer: toBytes(this.privateKey.export({ format: 'der', type: 'pkcs8' })),
    };
  }
}
