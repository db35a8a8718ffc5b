import { IdentityError } from '../errors/index.js';

/** The only accepted scheme prefix, byte for byte (SPIFFE-ID §2, §2.4). */
const SCHEME = 'spiffe://';

/** Longest SPIFFE ID we accept or build, in bytes (SPIFFE-ID §2.3). */
export const MAX_SPIFFE_ID_LENGTH = 2048;

/** Longest trust domain name we accept or build, in bytes (SPIFFE-ID §2.3). */
export const MAX_TRUST_DOMAIN_LENGTH = 255;

/** Guards the private constructors against callers that bypass TypeScript. */
const constructKey: unique symbol = Symbol('spiffeid.construct');

// Character classes as lookup tables indexed by UTF-16 code unit (< 128). Every valid SPIFFE ID is
// pure ASCII, so a string's length in code units equals its length in UTF-8 bytes once it passed.
const TD_CHARS = new Uint8Array(128);
const PATH_CHARS = new Uint8Array(128);
for (let c = 0x61; c <= 0x7a; c++) TD_CHARS[c] = PATH_CHARS[c] = 1; // a-z
for (let c = 0x30; c <= 0x39; c++) TD_CHARS[c] = PATH_CHARS[c] = 1; // 0-9
for (let c = 0x41; c <= 0x5a; c++) PATH_CHARS[c] = 1; // A-Z (path only)
for (const ch of '.-_') TD_CHARS[ch.charCodeAt(0)] = PATH_CHARS[ch.charCodeAt(0)] = 1;

/** Renders one character for an error message without echoing control bytes or long input. */
function describeChar(s: string, i: number): string {
  const cp = s.codePointAt(i) ?? 0;
  const hex = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return cp > 0x20 && cp < 0x7f ? `'${String.fromCodePoint(cp)}' (${hex})` : hex;
}

function charDetails(s: string, i: number): Record<string, unknown> {
  return { position: i, codePoint: s.codePointAt(i) ?? 0 };
}

/** Throws the dedicated error for `%`, `?` and `#`, which no part of a SPIFFE ID may contain. */
function throwIfUriDelimiter(c: number, where: string, details: { details: Record<string, unknown> }): void {
  if (c === 0x25 /* % */) {
    throw new IdentityError(
      'spiffeid-percent-encoding',
      `percent-encoding is not allowed in a SPIFFE ID: '%' ${where}`,
      details,
    );
  }
  if (c === 0x3f /* ? */) {
    throw new IdentityError(
      'spiffeid-query-not-allowed',
      `a SPIFFE ID must not have a query: '?' ${where}`,
      details,
    );
  }
  if (c === 0x23 /* # */) {
    throw new IdentityError(
      'spiffeid-fragment-not-allowed',
      `a SPIFFE ID must not have a fragment: '#' ${where}`,
      details,
    );
  }
}

/** Throws the error for a character that is not allowed in a trust domain name. */
function badTrustDomainChar(s: string, i: number): never {
  const c = s.charCodeAt(i);
  const where = `at position ${i}`;
  const details = { details: charDetails(s, i) };
  if (c === 0x3a /* : */) {
    throw new IdentityError(
      'spiffeid-port-not-allowed',
      `a SPIFFE trust domain must not carry a port: ':' ${where}`,
      details,
    );
  }
  if (c === 0x40 /* @ */) {
    throw new IdentityError(
      'spiffeid-userinfo-not-allowed',
      `a SPIFFE trust domain must not carry user info: '@' ${where}`,
      details,
    );
  }
  throwIfUriDelimiter(c, where, details);
  const hint = c >= 0x41 && c <= 0x5a ? ' (trust domains are lowercase only)' : '';
  throw new IdentityError(
    'spiffeid-bad-trust-domain-char',
    `trust domain characters are limited to a-z 0-9 . - _: ${describeChar(s, i)} ${where}${hint}`,
    details,
  );
}

/**
 * Throws the error for a character that is not allowed in a path segment. `segment` is set when
 * `s` is a lone segment given to a builder.
 */
function badPathChar(s: string, i: number, segment?: number): never {
  const c = s.charCodeAt(i);
  const where = segment === undefined ? `at position ${i}` : `at position ${i} of segment ${segment}`;
  const details = { details: segment === undefined ? charDetails(s, i) : { ...charDetails(s, i), segment } };
  throwIfUriDelimiter(c, where, details);
  throw new IdentityError(
    'spiffeid-bad-path-char',
    `path segment characters are limited to A-Z a-z 0-9 . - _: ${describeChar(s, i)} ${where}`,
    details,
  );
}

function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string') {
    throw new IdentityError('spiffeid-not-string', `${what} must be a string, got ${describeType(value)}`);
  }
  return value;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * Checks a trust domain name in `s[start, end)`; positions in errors are relative to `s`.
 * The caller has already checked `start < end`.
 */
function checkTrustDomainName(s: string, start: number, end: number): void {
  // User info is reported as such even when a ':' (user:password@) comes first.
  const at = s.indexOf('@', start);
  if (at !== -1 && at < end) badTrustDomainChar(s, at);
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TD_CHARS[c] !== 1) badTrustDomainChar(s, i);
  }
  if (end - start > MAX_TRUST_DOMAIN_LENGTH) {
    throw new IdentityError(
      'spiffeid-trust-domain-too-long',
      `a trust domain is at most ${MAX_TRUST_DOMAIN_LENGTH} bytes, got ${end - start}`,
    );
  }
}

/**
 * Checks a path in `s[start, s.length)`: empty, or one or more `/segment`. Positions in errors
 * are relative to `s`.
 */
function checkPath(s: string, start: number): void {
  let i = start;
  while (i < s.length) {
    // s[i] is '/': the caller guarantees it for the first segment, the loop for the others.
    const segStart = i + 1;
    let j = segStart;
    while (j < s.length) {
      const c = s.charCodeAt(j);
      if (c === 0x2f /* / */) break;
      if (c >= 128 || PATH_CHARS[c] !== 1) badPathChar(s, j);
      j++;
    }
    checkSegmentShape(s, segStart, j, j === s.length);
    i = j;
  }
}

function checkSegmentShape(s: string, segStart: number, segEnd: number, last: boolean): void {
  const len = segEnd - segStart;
  if (len === 0) {
    if (last) {
      throw new IdentityError(
        'spiffeid-trailing-slash',
        `a SPIFFE ID path must not end with '/': trailing '/' at position ${segStart - 1}`,
        { details: { position: segStart - 1 } },
      );
    }
    throw new IdentityError(
      'spiffeid-empty-segment',
      `a SPIFFE ID path must not contain empty segments: '//' at position ${segStart - 1}`,
      { details: { position: segStart - 1 } },
    );
  }
  if (s.charCodeAt(segStart) === 0x2e && (len === 1 || (len === 2 && s.charCodeAt(segStart + 1) === 0x2e))) {
    throw new IdentityError(
      'spiffeid-dot-segment',
      `a SPIFFE ID path must not contain '.' or '..' segments: '${s.slice(segStart, segEnd)}' at position ${segStart}`,
      { details: { position: segStart } },
    );
  }
}

/** Validates one segment given on its own (builders). */
function checkSegment(segment: unknown, index: number): string {
  const seg = requireString(segment, `path segment ${index}`);
  if (seg.length === 0) {
    throw new IdentityError(
      'spiffeid-empty-segment',
      `a SPIFFE ID path segment must not be empty (segment ${index})`,
    );
  }
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    if (c >= 128 || PATH_CHARS[c] !== 1) {
      if (c === 0x2f) {
        throw new IdentityError(
          'spiffeid-bad-path-char',
          `a single path segment must not contain '/' (segment ${index}, position ${i}); pass segments separately`,
          { details: { segment: index, position: i, codePoint: c } },
        );
      }
      badPathChar(seg, i, index);
    }
  }
  checkSegmentShape(seg, 0, seg.length, false);
  return seg;
}

function checkTotalLength(length: number): void {
  if (length > MAX_SPIFFE_ID_LENGTH) {
    throw new IdentityError(
      'spiffeid-too-long',
      `a SPIFFE ID is at most ${MAX_SPIFFE_ID_LENGTH} bytes, got ${length}`,
      { details: { length } },
    );
  }
}

/** Builds a trust domain from a name already validated by {@link SpiffeId.parse} (set below). */
let makeTrustDomain: (name: string) => TrustDomain;

function toTrustDomain(td: TrustDomain | string): TrustDomain {
  if (td instanceof TrustDomain) return td;
  return TrustDomain.parse(td);
}

/**
 * A SPIFFE trust domain: the authority part of a SPIFFE ID (`example.org` in
 * `spiffe://example.org/workload`).
 *
 * Instances only come from {@link TrustDomain.parse} (or from a parsed {@link SpiffeId}), so every
 * `TrustDomain` holds a valid name: lowercase `a-z 0-9 . - _`, 1 to 255 bytes.
 *
 * @example
 * ```ts
 * const td = TrustDomain.parse('example.org');
 * td.idString(); // 'spiffe://example.org'
 * TrustDomain.parse('spiffe://example.org/web').equals(td); // true
 * ```
 */
export class TrustDomain {
  /** The trust domain name, e.g. `example.org`. */
  readonly name: string;
  #rootId: SpiffeId | undefined;

  /** @internal Use {@link TrustDomain.parse}. */
  private constructor(key: typeof constructKey, name: string) {
    if (key !== constructKey) {
      throw new IdentityError(
        'spiffeid-private-constructor',
        'use TrustDomain.parse() to create a TrustDomain',
      );
    }
    this.name = name;
    Object.freeze(this);
  }

  /**
   * Parses a trust domain name (`example.org`) or takes the trust domain of a SPIFFE ID
   * (`spiffe://example.org` or `spiffe://example.org/any/path`).
   *
   * The name is never normalised: `Example.org` is rejected, not lowercased.
   *
   * @param nameOrSpiffeUri - a bare trust domain name, or a SPIFFE ID.
   * @returns the trust domain.
   * @throws IdentityError `spiffeid-missing-trust-domain`, `spiffeid-bad-trust-domain-char`,
   *   `spiffeid-port-not-allowed`, `spiffeid-trust-domain-too-long`, or any {@link SpiffeId.parse}
   *   code when the input is a SPIFFE ID.
   */
  static parse(nameOrSpiffeUri: string): TrustDomain {
    const s = requireString(nameOrSpiffeUri, 'a trust domain');
    if (s.length === 0) {
      throw new IdentityError('spiffeid-missing-trust-domain', 'a trust domain name must not be empty');
    }
    if (s.includes('://') || /^spiffe:/i.test(s)) return SpiffeId.parse(s).trustDomain;
    if (s.length > MAX_TRUST_DOMAIN_LENGTH) {
      throw new IdentityError(
        'spiffeid-trust-domain-too-long',
        `a trust domain is at most ${MAX_TRUST_DOMAIN_LENGTH} bytes, got ${s.length}`,
      );
    }
    checkTrustDomainName(s, 0, s.length);
    return new TrustDomain(constructKey, s);
  }

  static {
    makeTrustDomain = (name) => new TrustDomain(constructKey, name);
  }

  /** Returns the trust domain as a SPIFFE ID string: `spiffe://example.org`. */
  idString(): string {
    return SCHEME + this.name;
  }

  /** Returns the root SPIFFE ID of the trust domain (`spiffe://example.org`, empty path). */
  id(): SpiffeId {
    if (this.#rootId === undefined) this.#rootId = SpiffeId.fromPath(this, '');
    return this.#rootId;
  }

  /** Returns the bare name, e.g. `example.org`. */
  toString(): string {
    return this.name;
  }

  /** Returns the bare name so that `JSON.stringify` writes a string. */
  toJSON(): string {
    return this.name;
  }

  /**
   * Tells whether `o` names the same trust domain (byte-exact comparison).
   *
   * @param o - another trust domain; anything else compares unequal.
   */
  equals(o: TrustDomain): boolean {
    return o instanceof TrustDomain && o.name === this.name;
  }
}

/**
 * A SPIFFE ID: `spiffe://<trust domain><path>`.
 *
 * Parsing is byte-exact against the SPIFFE-ID specification: nothing is normalised, decoded or
 * lowercased, so `toString()` returns exactly the parsed input and two IDs are equal exactly when
 * their strings are. Rules enforced (see `docs/spiffe-ids.md`):
 *
 * - scheme exactly `spiffe://` (lowercase);
 * - trust domain non-empty, `a-z 0-9 . - _` only, at most 255 bytes; no user info, port,
 *   query, fragment or percent-encoding;
 * - path empty or `/segment/...`, segments of `A-Z a-z 0-9 . - _`, no empty, `.` or `..`
 *   segments, no trailing `/`;
 * - whole ID at most 2048 bytes.
 *
 * @example
 * ```ts
 * const id = SpiffeId.parse('spiffe://example.org/ns/prod/web');
 * id.trustDomain.name; // 'example.org'
 * id.path;             // '/ns/prod/web'
 * id.segments();       // ['ns', 'prod', 'web']
 * SpiffeId.fromSegments('example.org', 'ns', 'prod', 'web').equals(id); // true
 * ```
 */
export class SpiffeId {
  /** The trust domain the ID belongs to. */
  readonly trustDomain: TrustDomain;
  /** The path: `''` for the trust domain's root ID, otherwise `/a/b...`. */
  readonly path: string;
  readonly #str: string;

  /** @internal Use {@link SpiffeId.parse}, {@link SpiffeId.fromSegments} or {@link SpiffeId.fromPath}. */
  private constructor(key: typeof constructKey, td: TrustDomain, path: string) {
    if (key !== constructKey) {
      throw new IdentityError('spiffeid-private-constructor', 'use SpiffeId.parse() to create a SpiffeId');
    }
    this.trustDomain = td;
    this.path = path;
    this.#str = SCHEME + td.name + path;
    Object.freeze(this);
  }

  /**
   * Parses a SPIFFE ID string.
   *
   * @param s - the ID, e.g. `spiffe://example.org/workload`.
   * @returns the ID; `toString()` gives back `s` unchanged.
   * @throws IdentityError with one of the `spiffeid-*` codes listed in `docs/errors.md`; the
   *   message names the rule and the offending character and position.
   */
  static parse(s: string): SpiffeId {
    const str = requireString(s, 'a SPIFFE ID');
    if (str.length === 0) throw new IdentityError('spiffeid-empty', 'a SPIFFE ID must not be empty');
    checkTotalLength(str.length);
    if (!str.startsWith(SCHEME)) {
      const lowerPrefix = str.slice(0, SCHEME.length).toLowerCase();
      const why =
        lowerPrefix === SCHEME
          ? `the scheme must be exactly lowercase '${SCHEME}'`
          : `a SPIFFE ID must start with '${SCHEME}'`;
      throw new IdentityError('spiffeid-wrong-scheme', why);
    }
    let tdEnd = str.indexOf('/', SCHEME.length);
    if (tdEnd === -1) tdEnd = str.length;
    if (tdEnd === SCHEME.length) {
      throw new IdentityError(
        'spiffeid-missing-trust-domain',
        `a SPIFFE ID must have a non-empty trust domain after '${SCHEME}'`,
      );
    }
    checkTrustDomainName(str, SCHEME.length, tdEnd);
    checkPath(str, tdEnd);
    const td = makeTrustDomain(str.slice(SCHEME.length, tdEnd));
    return new SpiffeId(constructKey, td, str.slice(tdEnd));
  }

  /**
   * Builds an ID from a trust domain and path segments (each without `/`).
   *
   * @param td - the trust domain, as a {@link TrustDomain} or any string {@link TrustDomain.parse} accepts.
   * @param segments - zero or more path segments; none gives the trust domain's root ID.
   * @throws IdentityError `spiffeid-empty-segment`, `spiffeid-dot-segment`, `spiffeid-bad-path-char`,
   *   `spiffeid-too-long`, or a trust-domain code.
   */
  static fromSegments(td: TrustDomain | string, ...segments: string[]): SpiffeId {
    const trustDomain = toTrustDomain(td);
    let path = '';
    let length = SCHEME.length + trustDomain.name.length;
    for (let i = 0; i < segments.length; i++) {
      const seg = checkSegment(segments[i], i);
      length += seg.length + 1;
      checkTotalLength(length);
      path += `/${seg}`;
    }
    return new SpiffeId(constructKey, trustDomain, path);
  }

  /**
   * Builds an ID from a trust domain and a whole path (`''` or `/a/b`).
   *
   * @param td - the trust domain, as a {@link TrustDomain} or any string {@link TrustDomain.parse} accepts.
   * @param path - `''` for the root ID, or a path starting with `/` that obeys the path rules.
   * @throws IdentityError `spiffeid-path-not-absolute` when a non-empty path does not start with
   *   `/`, any path code of {@link SpiffeId.parse}, or `spiffeid-too-long`.
   */
  static fromPath(td: TrustDomain | string, path: string): SpiffeId {
    const trustDomain = toTrustDomain(td);
    const p = requireString(path, 'a SPIFFE ID path');
    checkTotalLength(SCHEME.length + trustDomain.name.length + p.length);
    if (p.length > 0 && p.charCodeAt(0) !== 0x2f) {
      throw new IdentityError(
        'spiffeid-path-not-absolute',
        "a SPIFFE ID path must be empty or start with '/'",
      );
    }
    checkPath(p, 0);
    return new SpiffeId(constructKey, trustDomain, p);
  }

  /** Returns the path segments: `[]` for a root ID, `['a', 'b']` for `/a/b`. */
  segments(): string[] {
    return this.path === '' ? [] : this.path.slice(1).split('/');
  }

  /** Tells whether this is a trust domain's root ID (empty path). */
  isRoot(): boolean {
    return this.path === '';
  }

  /**
   * Tells whether the ID belongs to `td`.
   *
   * @param td - a {@link TrustDomain}, or a string that {@link TrustDomain.parse} accepts.
   * @throws IdentityError when `td` is a string that is not a valid trust domain.
   */
  memberOf(td: TrustDomain | string): boolean {
    return toTrustDomain(td).name === this.trustDomain.name;
  }

  /**
   * Tells whether `o` is the same ID. A string compares byte for byte, so an invalid string is
   * simply unequal (it never throws).
   *
   * @param o - another ID or an ID string.
   */
  equals(o: SpiffeId | string): boolean {
    if (typeof o === 'string') return o === this.#str;
    return o instanceof SpiffeId && o.#str === this.#str;
  }

  /** Returns the ID string, exactly as parsed or built. */
  toString(): string {
    return this.#str;
  }

  /** Returns the ID string so that `JSON.stringify` writes a string. */
  toJSON(): string {
    return this.#str;
  }
}
