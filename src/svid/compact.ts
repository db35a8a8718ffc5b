// Strict readers for JWS compact serialization: base64url without padding and canonical tail
// bits, UTF-8 without replacement characters, JSON objects without duplicate member names.
// Internal to the svid folder.

import { IdentityError } from '../errors/index.js';
import { isJsonObject, parseStrictJson, toPlainJson } from '../internal/strict-json.js';

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function b64urlValue(c: number): number {
  if (c >= 0x41 && c <= 0x5a) return c - 0x41;
  if (c >= 0x61 && c <= 0x7a) return c - 0x61 + 26;
  if (c >= 0x30 && c <= 0x39) return c - 0x30 + 52;
  return c === 0x2d ? 62 : 63;
}

/**
 * Decodes unpadded base64url (RFC 7515 §2). Rejects padding, any character outside the
 * alphabet, impossible lengths, and non-zero unused bits in the last character (so that every
 * byte string has exactly one accepted encoding).
 */
export function decodeBase64url(s: string, part: string): Buffer {
  const rem = s.length % 4;
  if (rem === 1 || !BASE64URL.test(s)) {
    throw new IdentityError('jwtsvid-invalid-base64url', `${part} is not unpadded base64url`, {
      details: { part },
    });
  }
  if (rem !== 0) {
    const last = b64urlValue(s.charCodeAt(s.length - 1));
    if ((last & (rem === 2 ? 0x0f : 0x03)) !== 0) {
      throw new IdentityError('jwtsvid-invalid-base64url', `${part} has non-canonical base64url`, {
        details: { part },
      });
    }
  }
  return Buffer.from(s, 'base64url');
}

/**
 * Decodes a base64url JOSE part into a JSON object: strict base64url, strict UTF-8 (no BOM, no
 * replacement), valid JSON, an object at the top, no repeated member names, bounded nesting.
 */
export function decodeJsonObject(encoded: string, part: string, maxDepth: number): Record<string, unknown> {
  const bytes = decodeBase64url(encoded, part);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch (err) {
    throw new IdentityError('jwtsvid-malformed', `${part} is not valid UTF-8`, {
      cause: err,
      details: { part },
    });
  }
  // One strict pass: JSON.parse would silently keep the last of two repeated member names.
  const value = parseStrictJson(text, {
    codePrefix: 'jwtsvid',
    codes: {
      syntax: 'jwtsvid-malformed',
      duplicateMember: 'jwtsvid-duplicate-member',
      tooDeep: 'jwtsvid-malformed',
    },
    maxDepth,
    what: part,
  });
  if (!isJsonObject(value)) {
    throw new IdentityError('jwtsvid-malformed', `${part} is not a JSON object`, { details: { part } });
  }
  return toPlainJson(value) as Record<string, unknown>;
}

/** Freezes a parsed JSON value and everything inside it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
