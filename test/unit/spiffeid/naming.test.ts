import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdentityError } from '../../../src/errors/index.js';
import {
  agentId,
  agentIdFromEmail,
  describeTachikomaId,
  emailToSegment,
  podId,
  SpiffeId,
  segmentToEmail,
  serviceId,
} from '../../../src/spiffeid/index.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IdentityError);
    return (err as IdentityError).code;
  }
  return 'no error';
}

describe('naming scheme builders', () => {
  it('agentId, podId and serviceId build the documented paths', () => {
    expect(agentId('example.org', 'a1').toString()).toBe('spiffe://example.org/agent/a1');
    expect(podId('example.org', 'prod', 'web-0').toString()).toBe('spiffe://example.org/pod/prod/web-0');
    expect(serviceId('example.org', 'billing').toString()).toBe('spiffe://example.org/service/billing');
    expect(agentIdFromEmail('example.org', 'alice@example.com').toString()).toBe(
      'spiffe://example.org/agent/alice_at_example_dot_com',
    );
  });

  it('rejects names that are not one valid segment', () => {
    expect(codeOf(() => agentId('example.org', 'a/b'))).toBe('spiffeid-bad-path-char');
    expect(codeOf(() => agentId('example.org', '..'))).toBe('spiffeid-dot-segment');
    expect(codeOf(() => podId('example.org', '', 'p'))).toBe('spiffeid-empty-segment');
    expect(codeOf(() => serviceId('example.org', 'a b'))).toBe('spiffeid-bad-path-char');
    expect(codeOf(() => agentIdFromEmail('example.org', 'Alice@example.com'))).toBe('spiffeid-email-invalid');
  });

  it('describeTachikomaId recognises exactly the three shapes', () => {
    expect(describeTachikomaId(agentId('td', 'a1'))).toEqual({ kind: 'agent', agentId: 'a1' });
    expect(describeTachikomaId(podId('td', 'ns', 'p'))).toEqual({ kind: 'pod', namespace: 'ns', pod: 'p' });
    expect(describeTachikomaId(serviceId('td', 's'))).toEqual({ kind: 'service', name: 's' });
    for (const s of [
      'spiffe://td',
      'spiffe://td/agent',
      'spiffe://td/agent/a/b',
      'spiffe://td/pod/ns',
      'spiffe://td/pod/ns/p/x',
      'spiffe://td/service',
      'spiffe://td/service/a/b',
      'spiffe://td/Agent/a',
      'spiffe://td/other/a',
    ]) {
      expect(describeTachikomaId(SpiffeId.parse(s)), s).toBeUndefined();
    }
    expect(describeTachikomaId('spiffe://td/agent/a' as unknown as SpiffeId)).toBeUndefined();
  });
});

describe('emailToSegment / segmentToEmail', () => {
  const good: Array<[string, string]> = [
    ['alice@example.com', 'alice_at_example_dot_com'],
    ['a.b@c.d', 'a_dot_b_at_c_dot_d'],
    ['first_last@corp-1.example', 'first_last_at_corp-1_dot_example'],
    ['x_@y.io', 'x__at_y_dot_io'],
    ['_@x', '__at_x'],
    ['a@localhost', 'a_at_localhost'],
    ['at@dot.at', 'at_at_dot_dot_at'],
    ['a_t@x', 'a_t_at_x'],
  ];
  it.each(good)('%j ↔ %j', (email, segment) => {
    expect(emailToSegment(email)).toBe(segment);
    expect(segmentToEmail(segment)).toBe(email);
    expect(SpiffeId.fromSegments('td', segment).segments()).toEqual([segment]);
  });

  const badEmails: Array<[string, string, string]> = [
    ['empty', '', 'spiffeid-email-invalid'],
    ['no @', 'alice.example.com', 'spiffeid-email-invalid'],
    ['two @', 'a@b@c', 'spiffeid-email-invalid'],
    ['empty local part', '@example.com', 'spiffeid-email-invalid'],
    ['empty domain', 'alice@', 'spiffeid-email-invalid'],
    ['uppercase', 'Alice@example.com', 'spiffeid-email-invalid'],
    ['plus tag', 'alice+x@example.com', 'spiffeid-email-invalid'],
    ['space', 'a b@c', 'spiffeid-email-invalid'],
    ['non-ASCII', 'j\u00f6rg@example.com', 'spiffeid-email-invalid'],
    ['leading dot', '.a@b', 'spiffeid-email-invalid'],
    ['trailing dot in domain', 'a@b.', 'spiffeid-email-invalid'],
    ['double dot', 'a..b@c', 'spiffeid-email-invalid'],
    ['local part too long', `${'a'.repeat(65)}@x`, 'spiffeid-email-invalid'],
    ['too long', `a@${'b'.repeat(253)}`, 'spiffeid-email-invalid'],
    ['contains _at_', 'a_at_b@x.io', 'spiffeid-email-ambiguous'],
    ['contains _dot_', 'a_dot_b@x.io', 'spiffeid-email-ambiguous'],
    ['_at before @', 'team_at@x.io', 'spiffeid-email-ambiguous'],
    ['_at before .', 'x@a_at.io', 'spiffeid-email-ambiguous'],
    ['_dot before .', 'x_dot.y@x.io', 'spiffeid-email-ambiguous'],
    ['_dot before @', 'x_dot@x.io', 'spiffeid-email-ambiguous'],
  ];
  it.each(badEmails)('rejects %s (%j) with %s', (_n, email, code) => {
    expect(codeOf(() => emailToSegment(email))).toBe(code);
  });

  it('rejects non-strings', () => {
    expect(codeOf(() => emailToSegment(undefined as unknown as string))).toBe('spiffeid-email-invalid');
    expect(codeOf(() => segmentToEmail(3 as unknown as string))).toBe('spiffeid-email-segment-invalid');
  });

  it('the collisions the rule exists for are rejected on the ambiguous side', () => {
    // Mapped naively, each pair gives the same segment; only the unambiguous address is accepted.
    const naive = (e: string): string => e.replaceAll('@', '_at_').replaceAll('.', '_dot_');
    const pairs: Array<[string, string]> = [
      ['a.b@c.d', 'a_dot_b@c.d'],
      ['x@at_y.io', 'x_at@y.io'],
      ['a@b.c', 'a@b_dot_c'],
      ['team@x.io', 'team@x_dot_io'],
    ];
    for (const [accepted, rejected] of pairs) {
      expect(naive(accepted)).toBe(naive(rejected));
      expect(emailToSegment(accepted)).toBe(naive(accepted));
      expect(
        codeOf(() => emailToSegment(rejected)),
        rejected,
      ).toBe('spiffeid-email-ambiguous');
      expect(segmentToEmail(naive(accepted))).toBe(accepted);
    }
  });

  const badSegments: Array<[string, string]> = [
    ['empty', ''],
    ['no @ encoded', 'alice'],
    ['uppercase', 'Alice_at_x'],
    ['dot', 'a.b_at_c'],
    ['two @', 'a_at_b_at_c'],
    ['decodes to a rejected address', '_dot_a_at_b'],
    ['decodes to an address with a trailing dot', 'a_at_b_dot_'],
    ['decodes to an address with an empty label', 'a_at_b_dot__dot_c'],
    ['too long', `a_at_${'b'.repeat(2000)}`],
    ['slash', 'a_at_b/c'],
  ];
  it.each(badSegments)('segmentToEmail rejects %s (%j)', (_n, segment) => {
    expect(codeOf(() => segmentToEmail(segment))).toBe('spiffeid-email-segment-invalid');
  });

  // An alphabet that hits the tokens often: underscores, the letters of "at"/"dot", dots and @.
  const emailish = fc
    .array(fc.constantFrom('a', 't', 'd', 'o', '_', '.', '@', 'x', '-'), { minLength: 1, maxLength: 24 })
    .map((cs) => cs.join(''));

  it('property: accepted addresses round-trip and never collide', () => {
    const seen = new Map<string, string>();
    fc.assert(
      fc.property(emailish, (email) => {
        let segment: string;
        try {
          segment = emailToSegment(email);
        } catch (err) {
          expect(err).toBeInstanceOf(IdentityError);
          return;
        }
        expect(segmentToEmail(segment)).toBe(email);
        expect(SpiffeId.fromSegments('td', segment).path).toBe(`/${segment}`);
        const previous = seen.get(segment);
        if (previous !== undefined) expect(previous).toBe(email);
        seen.set(segment, email);
      }),
      { numRuns: 5000 },
    );
  });

  it('property: segmentToEmail is the exact inverse on the segments it accepts', () => {
    const segmentish = fc
      .array(fc.constantFrom('a', 't', 'd', 'o', '_', 'x', '-', '_at_', '_dot_'), {
        minLength: 1,
        maxLength: 16,
      })
      .map((cs) => cs.join(''));
    fc.assert(
      fc.property(segmentish, (segment) => {
        let email: string;
        try {
          email = segmentToEmail(segment);
        } catch (err) {
          expect(err).toBeInstanceOf(IdentityError);
          return;
        }
        expect(emailToSegment(email)).toBe(segment);
      }),
      { numRuns: 5000 },
    );
  });

  it('property: the documented ambiguity rule is exactly what is rejected as ambiguous', () => {
    fc.assert(
      fc.property(emailish, (email) => {
        const code = codeOf(() => emailToSegment(email));
        if (code === 'spiffeid-email-invalid') return; // syntax rules apply first
        expect(code === 'spiffeid-email-ambiguous').toBe(/_(at|dot)[_.@]/.test(email));
      }),
      { numRuns: 5000 },
    );
  });
});
