import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdentityError } from '../../../src/errors/index.js';
import { SpiffeId, TrustDomain } from '../../../src/spiffeid/index.js';

const tdChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789.-_');
const pathChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_');
const trustDomain = fc.array(tdChar, { minLength: 1, maxLength: 40 }).map((c) => c.join(''));
const segment = fc
  .array(pathChar, { minLength: 1, maxLength: 12 })
  .map((c) => c.join(''))
  .filter((s) => s !== '.' && s !== '..');
const validId = fc
  .tuple(trustDomain, fc.array(segment, { maxLength: 6 }))
  .map(([td, segs]) => `spiffe://${td}${segs.map((s) => `/${s}`).join('')}`);

/** Asserts that `fn` either returns or throws an IdentityError, nothing else. */
function onlyIdentityErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IdentityError);
  }
}

describe('SpiffeId properties', () => {
  it('parse → toString → parse is stable on valid IDs', () => {
    fc.assert(
      fc.property(validId, (s) => {
        const id = SpiffeId.parse(s);
        expect(id.toString()).toBe(s);
        const again = SpiffeId.parse(id.toString());
        expect(again.equals(id)).toBe(true);
        expect(SpiffeId.fromSegments(id.trustDomain, ...id.segments()).equals(id)).toBe(true);
        expect(SpiffeId.fromPath(id.trustDomain.name, id.path).equals(id)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('arbitrary strings never throw anything but IdentityError, and what parses round-trips', () => {
    const anyString = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.string({ maxLength: 40 }).map((s) => `spiffe://${s}`),
      fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => `spiffe://td/${s}`),
    );
    fc.assert(
      fc.property(anyString, (s) => {
        let id: SpiffeId | undefined;
        try {
          id = SpiffeId.parse(s);
        } catch (err) {
          expect(err).toBeInstanceOf(IdentityError);
        }
        if (id !== undefined) expect(SpiffeId.parse(id.toString()).toString()).toBe(s);
        onlyIdentityErrors(() => TrustDomain.parse(s));
        onlyIdentityErrors(() => SpiffeId.fromSegments('td', s));
        onlyIdentityErrors(() => SpiffeId.fromPath('td', s));
      }),
      { numRuns: 3000 },
    );
  });

  it('one inserted character either keeps the ID valid and stable or is rejected with an IdentityError', () => {
    const mutation = fc.tuple(validId, fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }));
    fc.assert(
      fc.property(mutation, ([s, at, c]) => {
        const i = at % (s.length + 1);
        const mutated = s.slice(0, i) + c + s.slice(i);
        try {
          expect(SpiffeId.parse(mutated).toString()).toBe(mutated);
        } catch (err) {
          expect(err).toBeInstanceOf(IdentityError);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('huge inputs are rejected quickly by the length bound', () => {
    const big = `spiffe://td/${'a'.repeat(5_000_000)}`;
    expect(() => SpiffeId.parse(big)).toThrow(/spiffeid-too-long/);
    expect(() => TrustDomain.parse('a'.repeat(5_000_000))).toThrow(/spiffeid-trust-domain-too-long/);
  });
});
