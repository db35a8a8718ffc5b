/**
 * Size and count limits applied to untrusted SVID input. They are checked before the expensive
 * work (decoding, signature checks) so hostile input is cheap to turn away.
 */
export const SVID_LIMITS: {
  /** Most certificates in an X509-SVID chain (leaf included). */
  readonly x509MaxChainLength: 16;
  /** Largest single DER certificate, in bytes. */
  readonly x509MaxCertificateBytes: 65536;
  /** Largest PEM text accepted for a chain or a key, in characters. */
  readonly x509MaxPemChars: 2097152;
  /** Most subjectAltName entries (of all kinds) in one certificate. */
  readonly x509MaxSanEntries: 256;
  /** Longest X509-SVID/JWT-SVID hint, in UTF-8 bytes (Workload API §5.2.1). */
  readonly maxHintBytes: 1024;
  /** Longest JWT-SVID accepted, in characters, checked before anything is decoded. */
  readonly jwtMaxTokenChars: 16384;
  /** Longest encoded JOSE header, in characters. */
  readonly jwtMaxHeaderChars: 1024;
  /** Longest `kid`, in characters. */
  readonly jwtMaxKidChars: 256;
  /** Most `aud` values in a token. */
  readonly jwtMaxAudiences: 32;
  /** Deepest JSON nesting in a JWT payload. */
  readonly jwtMaxJsonDepth: 16;
  /** Largest clock tolerance accepted by `validateJwtSvid`, in seconds. */
  readonly jwtMaxClockToleranceSec: 60;
  /** Default clock tolerance of `validateJwtSvid`, in seconds. */
  readonly jwtDefaultClockToleranceSec: 5;
} = Object.freeze({
  x509MaxChainLength: 16,
  x509MaxCertificateBytes: 65536,
  x509MaxPemChars: 2097152,
  x509MaxSanEntries: 256,
  maxHintBytes: 1024,
  jwtMaxTokenChars: 16384,
  jwtMaxHeaderChars: 1024,
  jwtMaxKidChars: 256,
  jwtMaxAudiences: 32,
  jwtMaxJsonDepth: 16,
  jwtMaxClockToleranceSec: 60,
  jwtDefaultClockToleranceSec: 5,
});
