// `npm run demo`: builds the example and the SDK sources it imports into
// node_modules/.cache/tachikoma-demo (outside dist/) and runs the narrated demo; its exit code is
// this script's exit code.
//
// The build only transpiles (TypeScript's transpileModule: types erased, nothing checked), file by
// file, skipping files whose output is newer than their source: a cold build takes about a second
// where `tsc` takes 15-20 s on a small machine. Type checking is CI's job
// (`tsc -p test/tsconfig.json` covers examples/). The compiled SDK finds the Workload API proto
// at ../../proto relative to itself, so proto/ is copied next to it.
import { copyFileSync, cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const out = join(root, 'node_modules', '.cache', 'tachikoma-demo');

function* sources(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(p);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield p;
    else if (entry.name.endsWith('.json') && dir.startsWith(join(root, 'src'))) yield p;
  }
}

function newer(src, dest) {
  try {
    return statSync(dest).mtimeMs < statSync(src).mtimeMs;
  } catch {
    return true;
  }
}

const started = performance.now();
let built = 0;
for (const dir of [join(root, 'src'), here]) {
  for (const src of sources(dir)) {
    const rel = relative(root, src);
    if (rel.startsWith(join('examples', 'tachikoma-agent', 'policies') + '/')) continue;
    const dest = join(out, src.endsWith('.ts') ? rel.replace(/\.ts$/, '.js') : rel);
    if (!newer(src, dest)) continue;
    mkdirSync(dirname(dest), { recursive: true });
    if (src.endsWith('.json')) {
      copyFileSync(src, dest);
    } else {
      const result = ts.transpileModule(readFileSync(src, 'utf8'), {
        fileName: src,
        reportDiagnostics: true,
        compilerOptions: {
          module: ts.ModuleKind.ESNext,
          target: ts.ScriptTarget.ES2023,
          verbatimModuleSyntax: true,
          sourceMap: false,
        },
      });
      if (result.diagnostics?.length) {
        process.stderr.write(
          `${rel}: ${ts.flattenDiagnosticMessageText(result.diagnostics[0].messageText, '\n')}\n`,
        );
        process.exit(1);
      }
      writeFileSync(dest, result.outputText);
    }
    built++;
  }
}
cpSync(join(root, 'proto'), join(out, 'proto'), { recursive: true });
process.stdout.write(
  `(example built in ${((performance.now() - started) / 1000).toFixed(1)} s, ${built} files transpiled)\n\n`,
);

await import(pathToFileURL(join(out, 'examples', 'tachikoma-agent', 'demo.js')).href);
