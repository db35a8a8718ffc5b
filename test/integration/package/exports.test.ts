// The published package: every `exports` subpath points at a file that `npm pack` includes, has
// types next to it, and imports by its public name (through Node's package self-reference, which
// resolves exactly as a consumer's import would). `npm test` builds dist/ before running this.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, string | { types: string; default: string }>;
};
const subpaths = Object.entries(pkg.exports).filter(
  (e): e is [string, { types: string; default: string }] => typeof e[1] === 'object',
);

describe('package exports', () => {
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' }),
  ) as Array<{ files: Array<{ path: string }> }>;
  const files = new Set(packed[0]!.files.map((f) => f.path));

  it.each(subpaths)('%s is built, typed and packed', (_subpath, target) => {
    for (const file of [target.default, target.types]) {
      expect(existsSync(join(root, file)), `${file} exists (run npm run build)`).toBe(true);
      expect(files.has(file.replace(/^\.\//, '')), `${file} is in the npm pack file list`).toBe(true);
    }
  });

  it.each(subpaths)('%s imports by its public name from ESM and CommonJS', (subpath) => {
    const specifier = subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`;
    const esm = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(specifier)}); console.log(Object.keys(m).length);`,
      ],
      { cwd: root, encoding: 'utf8' },
    );
    expect(Number(esm.trim())).toBeGreaterThan(0);
    // require(esm) works on Node >= 20.19 only if no module in the graph uses top-level await.
    const cjs = execFileSync(
      process.execPath,
      ['-e', `console.log(Object.keys(require(${JSON.stringify(specifier)})).length);`],
      {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, NODE_OPTIONS: '--no-warnings' },
      },
    );
    expect(Number(cjs.trim())).toBeGreaterThan(0);
  });

  it('ships the Workload API proto', () => {
    expect(files.has('proto/workload.proto')).toBe(true);
  });
});
