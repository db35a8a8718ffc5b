// Strict PEM and concatenated-DER readers for X509-SVID input. Internal to the svid folder.

import { IdentityError } from '../errors/index.js';

/** One PEM block: its label and decoded bytes. */
export interface PemBlock {
  readonly label: string;
  readonly der: Uint8Array;
}

const BEGIN = '-----BEGIN ';
const END = '-----END ';
const DASHES = '-----';

/**
 * Reads every PEM block of `text` (RFC 7468 strict encoding inside the blocks; explanatory text
 * between blocks is ignored). Base64 must be canonical; headers inside a block (encrypted PEM)
 * are rejected. At most `maxBlocks` blocks are read.
 */
export function readPemBlocks(
  text: string,
  code: string,
  maxBlocks: number,
  tooManyCode: string,
): PemBlock[] {
  const blocks: PemBlock[] = [];
  let pos = 0;
  for (;;) {
    const begin = text.indexOf(BEGIN, pos);
    if (begin === -1) break;
    if (blocks.length >= maxBlocks) {
      throw new IdentityError(tooManyCode, `more than ${maxBlocks} PEM blocks`, {
        details: { max: maxBlocks },
      });
    }
    const labelEnd = text.indexOf(DASHES, begin + BEGIN.length);
    const lineEnd = text.indexOf('\n', begin);
    if (labelEnd === -1 || (lineEnd !== -1 && labelEnd > lineEnd)) {
      throw new IdentityError(code, 'PEM BEGIN line is not terminated');
    }
    const label = text.slice(begin + BEGIN.length, labelEnd);
    if (!/^[A-Z0-9]+(?: [A-Z0-9]+)*$/.test(label)) {
      throw new IdentityError(code, 'PEM label is not valid');
    }
    const endLine = `${END}${label}${DASHES}`;
    const bodyStart = labelEnd + DASHES.length;
    const end = text.indexOf(endLine, bodyStart);
    if (end === -1) throw new IdentityError(code, `PEM block "${label}" has no matching END line`);
    const body = text.slice(bodyStart, end);
    if (body.includes(DASHES))
      throw new IdentityError(code, `PEM block "${label}" is not closed before the next`);
    if (body.includes(':')) {
      throw new IdentityError(code, `PEM block "${label}" has headers (encrypted PEM is not supported)`);
    }
    const b64 = body.replace(/[ \t\r\n]/g, '');
    if (b64.length === 0 || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
      throw new IdentityError(code, `PEM block "${label}" is not valid base64`);
    }
    const der = Buffer.from(b64, 'base64');
    if (der.toString('base64') !== b64) {
      throw new IdentityError(code, `PEM block "${label}" is not canonical base64`);
    }
    blocks.push({ label, der: new Uint8Array(der.buffer, der.byteOffset, der.byteLength) });
    pos = end + endLine.length;
  }
  return blocks;
}

/** Encodes DER bytes as one PEM block with 64-character lines. */
export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * Splits concatenated DER SEQUENCEs (the Workload API's `x509_svid` field) into elements by their
 * definite-length headers. Every element must be a SEQUENCE with a minimal length encoding.
 */
export function splitDerSequences(
  bytes: Uint8Array,
  code: string,
  maxElements: number,
  tooManyCode: string,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    if (out.length >= maxElements) {
      throw new IdentityError(tooManyCode, `more than ${maxElements} DER elements`, {
        details: { max: maxElements },
      });
    }
    if (bytes[pos] !== 0x30) throw new IdentityError(code, `DER element at offset ${pos} is not a SEQUENCE`);
    const first = bytes[pos + 1];
    if (first === undefined) throw new IdentityError(code, 'truncated DER length');
    let length: number;
    let header: number;
    if (first < 0x80) {
      length = first;
      header = 2;
    } else {
      const n = first & 0x7f;
      // 0x80 is the BER indefinite form; more than 4 length bytes cannot describe a bounded input.
      if (n === 0 || n > 4) throw new IdentityError(code, `unsupported DER length form at offset ${pos}`);
      if (pos + 2 + n > bytes.length) throw new IdentityError(code, 'truncated DER length');
      length = 0;
      for (let i = 0; i < n; i++) length = length * 256 + bytes[pos + 2 + i]!;
      if (bytes[pos + 2] === 0 || length < 0x80) {
        throw new IdentityError(code, `non-minimal DER length at offset ${pos}`);
      }
      header = 2 + n;
    }
    const endPos = pos + header + length;
    if (endPos > bytes.length) throw new IdentityError(code, `truncated DER element at offset ${pos}`);
    out.push(bytes.subarray(pos, endPos));
    pos = endPos;
  }
  return out;
}
