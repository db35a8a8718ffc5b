/**
 * Callers often pass `readFileSync(path)` (a Buffer of PEM text) where DER bytes are expected.
 * DER certificates and keys always start with 0x30 (SEQUENCE), so bytes whose first
 * non-whitespace characters are `-----BEGIN ` can only be PEM; this returns them as text.
 */
const BEGIN = '-----BEGIN ';

/** The bytes as text when they are PEM, else `undefined` (then they are treated as DER). */
export function pemTextOf(bytes: Uint8Array): string | undefined {
  let i = 0;
  while (
    i < bytes.length &&
    i < 64 &&
    (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0a || bytes[i] === 0x0d)
  )
    i++;
  for (let j = 0; j < BEGIN.length; j++) {
    if (bytes[i + j] !== BEGIN.charCodeAt(j)) return undefined;
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}
