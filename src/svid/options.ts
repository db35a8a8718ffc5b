// Option checks shared by the X509-SVID and JWT-SVID parsers. Internal to the svid folder.

import { IdentityError } from '../errors/index.js';
import { SVID_LIMITS } from './limits.js';

/** Validates a Workload API hint: a string of at most 1024 UTF-8 bytes, or undefined. */
export function checkHint(hint: unknown, code: string): string | undefined {
  if (hint === undefined) return undefined;
  if (typeof hint !== 'string') throw new IdentityError(code, 'opts.hint must be a string');
  if (Buffer.byteLength(hint, 'utf8') > SVID_LIMITS.maxHintBytes) {
    throw new IdentityError(code, `opts.hint is at most ${SVID_LIMITS.maxHintBytes} bytes`);
  }
  return hint;
}

/**
 * Renders untrusted text for an error message: truncated to `max` characters and JSON-quoted, so
 * control characters and quotes cannot forge log lines.
 */
export function quote(text: string, max = 64): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}
