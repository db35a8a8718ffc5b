// Every error code thrown by src/spiffeid, src/bundle and src/internal/strict-json.ts (with the
// bundle prefix) has a row in docs/errors.md.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');

function sources(dir: string): string[] {
  return readdirSync(join(root, dir))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => readFileSync(join(root, dir, f), 'utf8'));
}

describe('error codes of spiffeid and bundle', () => {
  it('are all documented in docs/errors.md', () => {
    const text = [...sources('src/spiffeid'), ...sources('src/bundle')].join('\n');
    const codes = new Set(
      [...text.matchAll(/'((?:spiffeid|bundle)-[a-z0-9]+(?:-[a-z0-9]+)*)'/g)].map((m) => m[1]!),
    );
    const strictJson = readFileSync(join(root, 'src/internal/strict-json.ts'), 'utf8');
    for (const m of strictJson.matchAll(/\$\{this\.#prefix\}(-json-[a-z-]+)/g)) codes.add(`bundle${m[1]}`);
    expect(codes.size).toBeGreaterThan(40);
    const docs = readFileSync(join(root, 'docs/errors.md'), 'utf8');
    const missing = [...codes].filter((c) => !docs.includes(`| \`${c}\` |`));
    expect(missing).toEqual([]);
  });
});
