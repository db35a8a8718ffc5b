// Strict readers for JWS compact serialization: base64url without padding and canonical tail
// bits, UTF-8 without replacement characters, JSON objects without duplicate member names.
// Internal to the svid folder.

import { IdentityError } from '../errors/index.js';
import { quote } from './options.js';

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
 * Throws when a JSON object anywhere in `text` repeats a member name (after unescaping), or
 * when nesting exceeds `maxDepth`. `text` must already be valid JSON.
 */
function checkMembers(text: string, maxDepth: number, part: string): void {
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) {
      stack.push(c === 0x7b ? new Set() : null);
      if (stack.length > maxDepth) {
        throw new IdentityError('jwtsvid-malformed', `${part} JSON nests deeper than ${maxDepth} levels`, {
          details: { part },
        });
      }
      expectKey = c === 0x7b;
      i++;
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
      expectKey = false;
      i++;
    } else if (c === 0x2c) {
      expectKey = stack[stack.length - 1] instanceof Set;
      i++;
    } else if (c === 0x22) {
      let j = i + 1;
      let escaped = false;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x5c) {
          escaped = true;
          j += 2;
        } else if (d === 0x22) {
          break;
        } else {
          j++;
        }
      }
      if (expectKey) {
        const raw = text.slice(i, j + 1);
        const name: string = escaped ? JSON.parse(raw) : raw.slice(1, -1);
        const members = stack[stack.length - 1] as Set<string>;
        if (members.has(name)) {
          throw new IdentityError('jwtsvid-duplicate-member', `${part} repeats the member ${quote(name)}`, {
            details: { part, member: name.slice(0, 64) },
          });
        }
        members.add(name);
        expectKey = false;
      }
      i = j + 1;
    } else {
      i++;
    }
  }
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
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new IdentityError('jwtsvid-malformed', `${part} is not valid JSON`, {
      cause: err,
      details: { part },
    });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new IdentityError('jwtsvid-malformed', `${part} is not a JSON object`, { details: { part } });
  }
  checkMembers(text, maxDepth, part);
  return value as Record<string, unknown>;
}

/** Freezes a parsed JSON value and everything inside it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
