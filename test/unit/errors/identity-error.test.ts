import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IdentityError, isIdentityError } from '../../../src/errors/index.js';

describe('IdentityError', () => {
  it('carries a stable code that also prefixes the message', () => {
    const err = new IdentityError('spiffeid-bad-path-char', 'path contains "%" at 12');
    expect(err.code).toBe('spiffeid-bad-path-char');
    expect(err.message).toBe('spiffeid-bad-path-char: path contains "%" at 12');
    expect(err.name).toBe('IdentityError');
    expect(err).toBeInstanceOf(Error);
  });

  it('keeps the cause and details', () => {
    const cause = new Error('grpc unavailable');
    const err = new IdentityError('workload-unavailable', 'agent down', { cause, details: { code: 14 } });
    expect(err.cause).toBe(cause);
    expect(err.details).toEqual({ code: 14 });
  });

  it('is recognised across copies of the package by its registered brand', () => {
    // A plain object carrying the brand stands in for an error made by another installed copy.
    const foreign = Object.defineProperty(new Error('x'), Symbol.for('@tachikoma/identity.IdentityError'), {
      value: true,
    });
    expect(foreign instanceof IdentityError).toBe(true);
    expect(new Error('plain') instanceof IdentityError).toBe(false);
    expect(isIdentityError(new IdentityError('a-b', 'c'), 'a-b')).toBe(true);
    expect(isIdentityError(new IdentityError('a-b', 'c'), 'a-c')).toBe(false);
    expect(isIdentityError('a-b')).toBe(false);
  });
});

/** Every error code used in src/ is documented in docs/errors.md. */
describe('docs/errors.md', () => {
  const root = join(import.meta.dirname, '../../..');
  const prefixes = [
    'spiffeid',
    'bundle',
    'x509svid',
    'jwtsvid',
    'svid',
    'workload',
    'tls',
    'policy',
    'dev',
    'grpc',
    'http',
    'federation',
    'spire',
    'cli',
    'source',
    'auth',
  ];
  const codePattern = new RegExp(`['"\`]((?:${prefixes.join('|')})-[a-z0-9]+(?:-[a-z0-9]+)*)['"\`]`, 'g');

  function sourceFiles(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return sourceFiles(p);
      return p.endsWith('.ts') ? [p] : [];
    });
  }

  it('lists every code that src/ throws', () => {
    const documented = readFileSync(join(root, 'docs/errors.md'), 'utf8');
    const missing: string[] = [];
    for (const file of sourceFiles(join(root, 'src'))) {
      const text = readFileSync(file, 'utf8');
      // src/errors only defines the class; its TSDoc mentions example codes.
      if (!text.includes('IdentityError') || file.includes('/src/errors/')) continue;
      for (const m of text.matchAll(codePattern)) {
        const code = m[1]!;
        if (!documented.includes(`\`${code}\``)) missing.push(`${code} (${file.slice(root.length + 1)})`);
      }
    }
    expect([...new Set(missing)]).toEqual([]);
  });
});
