// The shipped capabilities.json, checked against the real opa: it must list exactly the built-ins
// this runtime can run (natively compiled by OPA's wasm backend, implemented by opa-wasm, or
// implemented by us), so that `opa build --capabilities` refuses everything else at build time.
//
// Regenerate after an OPA upgrade with:
//   UPDATE_POLICY_CAPABILITIES=1 npx vitest run test/integration/policy/capabilities.test.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { isIdentityError } from '../../../src/errors/index.js';
import { readBundle } from '../../../src/policy/bundle.js';
import {
  capabilitiesPath,
  HOST_BUILTINS,
  PolicyEngine,
  SDK_BUILTINS,
  SPIFFE_PARSE_ID_DECL,
} from '../../../src/policy/index.js';
import { inspectModule } from '../../../src/policy/wasm.js';
import { compileRego, runOk } from '../../rig/index.js';
import { opaPath } from '../../rig/tools.js';
import { compileWithCapabilities } from './helpers.js';

interface BuiltinEntry {
  name: string;
  decl?: { args?: unknown[] };
  deprecated?: boolean;
  [k: string]: unknown;
}

interface Capabilities {
  builtins: BuiltinEntry[];
  future_keywords?: string[];
  features?: string[];
  wasm_abi_versions?: { version: number; minor_version: number }[];
}

/** Operators and internals that cannot be called by name but compile natively. */
const NATIVE_INTERNALS = [
  'assign',
  'eq',
  'internal.member_2',
  'internal.member_3',
  'internal.template_string',
];
/** `print` compiles to nothing in wasm (opa build strips it), so policies may keep it. */
const STRIPPED = ['internal.print', 'print'];

const limits = { maxCompressedBytes: 64 << 20, maxDecompressedBytes: 64 << 20, maxEntries: 100 };

let current: Capabilities;
let nonNative: Set<string>;
let called: string[];

beforeAll(async () => {
  current = JSON.parse(await runOk(opaPath(), ['capabilities', '--current'])) as Capabilities;
  // One rule per callable, non-deprecated built-in; the module's builtins() table then lists the
  // ones the wasm backend leaves to the host.
  const callable = current.builtins.filter(
    (b) =>
      /^[a-z]/.test(b.name) &&
      !b.name.startsWith('internal.') &&
      !b.deprecated &&
      !['eq', 'assign', 'print', 'trace'].includes(b.name),
  );
  called = callable.map((b) => b.name);
  const rules = callable.map(
    (b, i) => `r${i} := ${b.name}(${(b.decl?.args ?? []).map((_, j) => `input.a${j}`).join(', ')})`,
  );
  const bundle = await compileRego(
    { 'probe.rego': `package probe\n\n${rules.join('\n')}\n` },
    callable.map((_, i) => `probe/r${i}`),
  );
  const parsed = await readBundle(bundle, limits);
  const info = await inspectModule(parsed.wasm, { initialPages: 16, maximumPages: 1024 });
  nonNative = new Set(info.builtins);
});

function expectedCapabilities(): Capabilities {
  const natives = called.filter((n) => !nonNative.has(n));
  const names = new Set([...natives, ...NATIVE_INTERNALS, ...STRIPPED, ...SDK_BUILTINS, ...HOST_BUILTINS]);
  names.delete('spiffe.parse_id');
  const byName = new Map(current.builtins.map((b) => [b.name, b]));
  const entries: BuiltinEntry[] = [...names].map((n) => {
    const entry = byName.get(n);
    if (entry === undefined) throw new Error(`opa ${n} is not a built-in of this opa`);
    return entry;
  });
  entries.push(SPIFFE_PARSE_ID_DECL as BuiltinEntry);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    builtins: entries,
    future_keywords: current.future_keywords ?? [],
    features: ['keywords_in_refs', 'rego_v1', 'template_strings'],
    wasm_abi_versions: [
      { version: 1, minor_version: 1 },
      { version: 1, minor_version: 2 },
      { version: 1, minor_version: 3 },
    ],
  };
}

describe('capabilities.json', () => {
  it('lists exactly the natively compiled, opa-wasm and host built-ins of this opa', () => {
    const expected = `${JSON.stringify(expectedCapabilities(), null, 2)}\n`;
    if (process.env['UPDATE_POLICY_CAPABILITIES'] === '1') writeFileSync(capabilitiesPath(), expected);
    expect(readFileSync(capabilitiesPath(), 'utf8')).toBe(expected);
  });

  it('needs a host implementation for every host built-in we ship (none is native)', () => {
    for (const name of HOST_BUILTINS.filter((n) => n !== 'spiffe.parse_id')) {
      expect(nonNative.has(name), name).toBe(true);
    }
  });

  it('declares the rego_v1 feature and our spiffe.parse_id', () => {
    const caps = JSON.parse(readFileSync(capabilitiesPath(), 'utf8')) as Capabilities;
    expect(caps.features).toContain('rego_v1');
    expect(caps.builtins.find((b) => b.name === 'spiffe.parse_id')).toEqual(SPIFFE_PARSE_ID_DECL);
  });

  it('makes opa build refuse a built-in this runtime lacks, naming it', async () => {
    const rego = { 'p.rego': 'package p\n\nt := time.parse_rfc3339_ns(input.t)\n' };
    await expect(compileWithCapabilities(rego, ['p/t'])).rejects.toThrow(/time\.parse_rfc3339_ns/);
    const http = { 'p.rego': 'package p\n\nr := http.send({"method": "GET", "url": input.u})\n' };
    await expect(compileWithCapabilities(http, ['p/r'])).rejects.toThrow(/http\.send/);
  });

  it('lets opa build compile every host built-in, spiffe.parse_id and Rego v1 syntax', async () => {
    const rego = {
      'p.rego': [
        'package p',
        'now := time.now_ns()',
        'jwt := io.jwt.decode(input.jwt)',
        'prefix := strings.any_prefix_match(input.s, ["a"])',
        'suffix := strings.any_suffix_match(input.s, ["a"])',
        'cidr := net.cidr_is_valid(input.c)',
        'cmp := semver.compare(input.v, "1.0.0")',
        'valid := semver.is_valid(input.v)',
        'bytes := units.parse_bytes(input.b)',
        'id := uuid.rfc4122("k")',
        'sha := crypto.sha256(input.s)',
        'hx := hex.encode(input.s)',
        'sp := spiffe.parse_id(input.id)',
        'greeting := $"hello {input.s}"',
        'names contains n if { some n in input.names }',
        '',
      ].join('\n'),
    };
    const eps = [
      'now',
      'jwt',
      'prefix',
      'suffix',
      'cidr',
      'cmp',
      'valid',
      'bytes',
      'id',
      'sha',
      'hx',
      'sp',
      'greeting',
      'names',
    ];
    const bundle = await compileWithCapabilities(
      rego,
      eps.map((e) => `p/${e}`),
    );
    await using engine = await PolicyEngine.fromBundle(bundle);
    expect(engine.evaluate('p/greeting', { s: 'agent' }).result).toBe('hello agent');
    expect(engine.evaluate('p/sp', { id: 'spiffe://example.org/agent/a1' }).result).toEqual({
      trust_domain: 'example.org',
      path: '/agent/a1',
      segments: ['agent', 'a1'],
    });
    // A Rego set arrives as a JSON array; OPA's wasm runtime does not sort it.
    expect((engine.evaluate('p/names', { names: ['b', 'a', 'b'] }).result as string[]).sort()).toEqual([
      'a',
      'b',
    ]);
  });

  it('refuses at load time a module that needs a built-in this runtime lacks, naming it', async () => {
    // Compiled without our capabilities, so opa build lets it through.
    const bundle = await compileRego(
      { 'p.rego': 'package p\n\nt := time.parse_rfc3339_ns(input.t)\nu := urlquery.encode(input.u)\n' },
      ['p/t', 'p/u'],
    );
    const err = await PolicyEngine.fromBundle(bundle).catch((e: unknown) => e);
    expect(isIdentityError(err, 'policy-builtin-unsupported')).toBe(true);
    expect((err as Error).message).toMatch(/time\.parse_rfc3339_ns, urlquery\.encode/);
    expect((err as { details?: { builtins?: string[] } }).details?.builtins).toEqual([
      'time.parse_rfc3339_ns',
      'urlquery.encode',
    ]);
  });
});
