/**
 * A minimal DER writer (and a reader for one TLV) for the dev server's certificates. Building
 * certificates from these few encoders is about ten times faster than through asn1js objects,
 * which matters when tests and benchmarks rotate SVIDs thousands of times.
 *
 * @internal
 */

function lengthBytes(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const out: number[] = [];
  let v = n;
  while (v > 0) {
    out.unshift(v & 0xff);
    v = Math.floor(v / 256);
  }
  return Uint8Array.of(0x80 | out.length, ...out);
}

/** One TLV with the given tag byte and content. */
export function tlv(tag: number, content: Uint8Array): Uint8Array {
  const len = lengthBytes(content.length);
  const out = new Uint8Array(1 + len.length + content.length);
  out[0] = tag;
  out.set(len, 1);
  out.set(content, 1 + len.length);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** SEQUENCE. */
export const seq = (...parts: Uint8Array[]): Uint8Array => tlv(0x30, concat(parts));
/** SET (callers pass a single element or elements already in DER order). */
export const set = (...parts: Uint8Array[]): Uint8Array => tlv(0x31, concat(parts));
/** Context-specific constructed `[n]`. */
export const ctxCons = (n: number, ...parts: Uint8Array[]): Uint8Array => tlv(0xa0 | n, concat(parts));
/** Context-specific primitive `[n]` (IMPLICIT). */
export const ctxPrim = (n: number, content: Uint8Array): Uint8Array => tlv(0x80 | n, content);
/** BOOLEAN TRUE. */
export const boolTrue = (): Uint8Array => Uint8Array.of(0x01, 0x01, 0xff);
/** OCTET STRING. */
export const octets = (content: Uint8Array): Uint8Array => tlv(0x04, content);
/** UTF8String. */
export const utf8 = (s: string): Uint8Array => tlv(0x0c, new TextEncoder().encode(s));
/** BIT STRING with the given number of unused bits in the last byte. */
export const bits = (content: Uint8Array, unused = 0): Uint8Array =>
  tlv(0x03, concat([Uint8Array.of(unused), content]));

/** INTEGER from unsigned big-endian bytes (a leading zero is added when the top bit is set). */
export function uint(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = bytes.subarray(i);
  return tlv(0x02, (trimmed[0] ?? 0) & 0x80 ? concat([Uint8Array.of(0), trimmed]) : trimmed);
}

/** OBJECT IDENTIFIER from dotted text. */
export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const stack: number[] = [arc & 0x7f];
    let v = Math.floor(arc / 128);
    while (v > 0) {
      stack.unshift((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(...stack);
  }
  return tlv(0x06, Uint8Array.from(out));
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
export function time(d: Date): Uint8Array {
  const y = d.getUTCFullYear();
  const rest = `${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
  const enc = new TextEncoder();
  return y < 2050
    ? tlv(0x17, enc.encode(`${pad(y % 100)}${rest}`))
    : tlv(0x18, enc.encode(`${pad(y, 4)}${rest}`));
}

/** Reads the TLV at `offset`: its tag, content bounds and end. */
export function readTlv(der: Uint8Array, offset: number): { tag: number; start: number; end: number } {
  const tag = der[offset];
  let lenByte = der[offset + 1];
  if (tag === undefined || lenByte === undefined) throw new Error('DER: truncated');
  let start = offset + 2;
  let len = lenByte;
  if (lenByte & 0x80) {
    const n = lenByte & 0x7f;
    if (n === 0 || n > 4) throw new Error('DER: unsupported length');
    len = 0;
    for (let i = 0; i < n; i++) {
      lenByte = der[start + i];
      if (lenByte === undefined) throw new Error('DER: truncated');
      len = len * 256 + lenByte;
    }
    start += n;
  }
  if (start + len > der.length) throw new Error('DER: truncated');
  return { tag, start, end: start + len };
}
