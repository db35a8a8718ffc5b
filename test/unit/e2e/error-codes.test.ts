// Every `auth-` and `health-` code the JWT-SVID middleware, the token bridge and identity health
// use has a row in docs/errors.md (the shared check in test/unit/errors does not scan `health-`).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');
const files = [
  'src/http/jwt-svid-auth.ts',
  'src/http/token-bridge.ts',
  ...readdirSync(join(root, 'src/health')).map((f) => `src/health/${f}`),
];

describe('auth- and health- error codes', () => {
  it('are all documented in docs/errors.md', () => {
    const codes = new Set<string>();
    for (const f of files) {
      for (const m of readFileSync(join(root, f), 'utf8').matchAll(
        /['"`]((?:auth|health)-[a-z]+(?:-[a-z]+)*)/g,
      )) {
        codes.add(m[1]!);
      }
    }
    expect(codes.size).toBeGreaterThan(20);
    const docs = readFileSync(join(root, 'docs/errors.md'), 'utf8');
    expect([...codes].filter((c) => !docs.includes(`| \`${c}\` |`))).toEqual([]);
  });
});
