/**
 * A small, bounded reader for gzip'd USTAR archives (the format `opa build` writes).
 *
 * Everything happens in memory: entries are never written to disk. The decompressed size is
 * capped before a single tar header is read (gunzip's `maxOutputLength`), the number of headers
 * is capped, every header checksum is verified, and names that climb out of the archive (`..`)
 * or repeat are refused. Only regular files are returned; directories, links and devices are
 * skipped and never followed.
 */
import { gunzip } from 'node:zlib';
import { IdentityError } from '../errors/index.js';

const BLOCK = 512;
const decoder = new TextDecoder('utf-8', { fatal: false });

/** One regular file of an archive. */
export interface TarFile {
  /** Normalised path: no leading `/` or `./`, `/`-separated, no `.` or `..` segments. */
  readonly name: string;
  /** File contents (a view into the decompressed archive). */
  readonly data: Uint8Array;
}

/** Bounds applied while unpacking an archive. */
export interface TarLimits {
  /** Largest decompressed archive accepted, in bytes. */
  readonly maxBytes: number;
  /** Largest number of tar headers (files, directories, extended headers) accepted. */
  readonly maxEntries: number;
}

/**
 * Decompresses gzip bytes, refusing output larger than `maxBytes` (zip-bomb guard). Runs on the
 * libuv thread pool so a large bundle does not block the event loop.
 */
export function gunzipBounded(bytes: Uint8Array, maxBytes: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) {
      reject(new IdentityError('policy-bundle-not-gzip', 'a bundle must be a gzip-compressed tar archive'));
      return;
    }
    gunzip(bytes, { maxOutputLength: maxBytes }, (err, out) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
          reject(
            new IdentityError(
              'policy-bundle-too-large',
              `the decompressed bundle exceeds the limit of ${maxBytes} bytes`,
              { cause: err, details: { limit: maxBytes } },
            ),
          );
        } else {
          reject(
            new IdentityError('policy-bundle-not-gzip', `the bundle is not valid gzip: ${err.message}`, {
              cause: err,
            }),
          );
        }
        return;
      }
      resolve(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
    });
  });
}

function corrupt(detail: string): IdentityError {
  return new IdentityError('policy-bundle-invalid-tar', detail);
}

/** Reads a NUL-terminated field. */
function cString(buf: Uint8Array, start: number, length: number): string {
  let end = start;
  const limit = start + length;
  while (end < limit && buf[end] !== 0) end++;
  return decoder.decode(buf.subarray(start, end));
}

/** Parses an octal numeric field (NUL/space padded). Base-256 fields (huge sizes) are refused. */
function octal(buf: Uint8Array, start: number, length: number, what: string): number {
  if ((buf[start] ?? 0) & 0x80) throw corrupt(`${what} uses base-256 encoding (entry too large)`);
  let value = 0;
  let seenDigit = false;
  for (let i = start; i < start + length; i++) {
    const c = buf[i] ?? 0;
    if (c === 0 || c === 0x20) {
      if (seenDigit) break;
      continue;
    }
    if (c < 0x30 || c > 0x37) throw corrupt(`${what} is not an octal number`);
    value = value * 8 + (c - 0x30);
    seenDigit = true;
  }
  if (!Number.isSafeInteger(value)) throw corrupt(`${what} is out of range`);
  return value;
}

function verifyChecksum(buf: Uint8Array, off: number): void {
  const stored = octal(buf, off + 148, 8, 'header checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (buf[off + i] ?? 0);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (stored !== unsigned && stored !== signed) {
    throw corrupt(`header checksum mismatch at offset ${off} (stored ${stored}, computed ${unsigned})`);
  }
}

function isZeroBlock(buf: Uint8Array, off: number): boolean {
  for (let i = off; i < off + BLOCK; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * Normalises an archive path: strips a leading `/` or `./`, drops empty and `.` segments, and
 * refuses `..` and NUL bytes.
 */
export function normalizeEntryName(raw: string): string {
  if (raw.includes('\0')) throw corrupt('an entry name contains a NUL byte');
  const parts: string[] = [];
  for (const seg of raw.replaceAll('\\', '/').split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      throw new IdentityError(
        'policy-bundle-invalid-path',
        `entry '${raw}' climbs out of the bundle with '..'`,
      );
    }
    parts.push(seg);
  }
  return parts.join('/');
}

/** Parses a PAX extended header body into key/value records. */
function parsePax(body: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0) break;
    let sp = pos;
    while (sp < body.length && body[sp] !== 0x20) sp++;
    const len = Number.parseInt(decoder.decode(body.subarray(pos, sp)), 10);
    if (!Number.isInteger(len) || len <= 0 || pos + len > body.length || sp >= pos + len) {
      throw corrupt('malformed PAX extended header record');
    }
    const record = decoder.decode(body.subarray(sp + 1, pos + len - 1));
    const eq = record.indexOf('=');
    if (eq <= 0) throw corrupt('malformed PAX extended header record');
    out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

/**
 * Lists the regular files of an uncompressed tar archive.
 *
 * @throws IdentityError `policy-bundle-invalid-tar` (truncated or corrupt headers),
 *   `policy-bundle-too-many-entries`, `policy-bundle-invalid-path`, `policy-bundle-duplicate-entry`.
 */
export function readTar(tar: Uint8Array, limits: TarLimits): TarFile[] {
  const files: TarFile[] = [];
  const seen = new Set<string>();
  let off = 0;
  let headers = 0;
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  let longName: string | undefined;
  while (off + BLOCK <= tar.length) {
    if (isZeroBlock(tar, off)) break; // end-of-archive marker
    if (++headers > limits.maxEntries) {
      throw new IdentityError(
        'policy-bundle-too-many-entries',
        `the bundle has more than ${limits.maxEntries} tar entries`,
        { details: { limit: limits.maxEntries } },
      );
    }
    verifyChecksum(tar, off);
    const magic = decoder.decode(tar.subarray(off + 257, off + 262));
    if (magic !== 'ustar') throw corrupt(`entry at offset ${off} is not a USTAR header`);
    const type = String.fromCharCode(tar[off + 156] ?? 0);
    let size = octal(tar, off + 124, 12, 'entry size');
    if (paxSize !== undefined && (type === '0' || type === '\0')) size = paxSize;
    const dataStart = off + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > tar.length) throw corrupt(`entry at offset ${off} is truncated`);
    const body = tar.subarray(dataStart, dataEnd);
    off = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    if (type === 'x') {
      const pax = parsePax(body);
      paxPath = pax.get('path');
      const s = pax.get('size');
      if (s !== undefined) {
        if (!/^[0-9]{1,15}$/.test(s)) throw corrupt('PAX size is not a decimal number');
        paxSize = Number(s);
      }
      continue;
    }
    if (type === 'g' || type === 'K') continue; // global PAX header, GNU long link name
    if (type === 'L') {
      longName = cString(body, 0, body.length);
      continue;
    }
    const headerStart = dataStart - BLOCK;
    const rawName =
      paxPath ??
      longName ??
      (() => {
        const name = cString(tar, headerStart, 100);
        const pre = cString(tar, headerStart + 345, 155);
        return pre ? `${pre}/${name}` : name;
      })();
    paxPath = undefined;
    paxSize = undefined;
    longName = undefined;
    if (type !== '0' && type !== '\0' && type !== '7') continue; // directories, links, devices: skipped
    const name = normalizeEntryName(rawName);
    if (name === '') throw new IdentityError('policy-bundle-invalid-path', 'a file entry has an empty name');
    if (seen.has(name)) {
      throw new IdentityError(
        'policy-bundle-duplicate-entry',
        `the bundle contains '/${name}' more than once`,
      );
    }
    seen.add(name);
    files.push({ name, data: body });
  }
  return files;
}
