// Module hooks that let a plain `node` child process run this repository's TypeScript sources
// (test helpers only): `.js` specifiers fall back to the `.ts` file next to them, and `.ts` files
// are transpiled with the project's own TypeScript compiler (types are erased, nothing checked).
// Transpiled output is cached on disk by a hash of the source, so only the first child pays.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cacheDir = join(tmpdir(), 'tk-ts-hooks-cache');
let ts;

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    const relative = specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('file:');
    if (relative && specifier.endsWith('.js')) return next(`${specifier.slice(0, -3)}.ts`, context);
    throw err;
  }
}

async function transpile(source, fileName) {
  ts ??= (await import('typescript')).default;
  return ts.transpileModule(source, {
    fileName,
    compilerOptions: {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2022,
      verbatimModuleSyntax: true,
      sourceMap: false,
    },
  }).outputText;
}

export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const fileName = fileURLToPath(url);
  const source = readFileSync(fileName, 'utf8');
  const key = createHash('sha256').update(fileName).update('\0').update(source).digest('hex');
  const cached = join(cacheDir, `${key}.js`);
  let output;
  try {
    output = readFileSync(cached, 'utf8');
  } catch {
    output = await transpile(source, fileName);
    try {
      mkdirSync(cacheDir, { recursive: true, mode: 0o777 });
      const tmp = `${cached}.${process.pid}.tmp`;
      writeFileSync(tmp, output, { mode: 0o644 });
      renameSync(tmp, cached);
    } catch {
      // a read-only or foreign-owned cache only costs speed
    }
  }
  return { format: 'module', source: output, shortCircuit: true };
}
