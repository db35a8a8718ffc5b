// The bounded tar reader and the bundle parser, on archives built in the test.
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { isIdentityError } from '../../../src/errors/index.js';
import { parseBundleFiles, readBundle } from '../../../src/policy/bundle.js';
import { PolicyEngine } from '../../../src/policy/index.js';
import { gunzipBounded, normalizeEntryName, readTar } from '../../../src/policy/tar.js';
import { paxPath, type TarEntrySpec, tar, tgz } from './tar-writer.js';
import { opaLikeModule } from './wasm-builder.js';

const limits = { maxBytes: 1 << 20, maxEntries: 100 };
const bundleLimits = { maxCompressedBytes: 1 << 20, maxDecompressedBytes: 1 << 20, maxEntries: 100 };
const manifest = JSON.stringify({
  revision: 'r1',
  roots: [''],
  wasm: [{ entrypoint: 'p/allow', module: '/policy.wasm' }],
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('readTar', () => {
  it('returns regular files with normalised names and skips directories and links', () => {
    const files = readTar(
      tar([
        { name: '/', type: '5' },
        { name: '/policy.wasm', data: 'WASM' },
        { name: './a/data.json', data: '{}' },
        { name: 'link', type: '2' },
        { name: 'x.rego', prefix: 'deep/dir', data: 'package x' },
      ]),
      limits,
    );
    expect(files.map((f) => [f.name, Buffer.from(f.data).toString()])).toEqual([
      ['policy.wasm', 'WASM'],
      ['a/data.json', '{}'],
      ['deep/dir/x.rego', 'package x'],
    ]);
  });

  it('takes long names from PAX and GNU headers', () => {
    const long = `${'d/'.repeat(80)}data.json`;
    const files = readTar(
      tar([
        paxPath(`/${long}`),
        { name: 'truncated', data: '{"a":1}' },
        { name: '././@LongLink', type: 'L', data: `${long}x\0` },
        { name: 'short', data: '{}' },
      ]),
      limits,
    );
    expect(files.map((f) => f.name)).toEqual([long, `${long}x`]);
  });

  it('refuses a header whose checksum does not match', () => {
    const err = thrown(() => readTar(tar([{ name: 'policy.wasm', data: 'x', badChecksum: true }]), limits));
    expect(isIdentityError(err, 'policy-bundle-invalid-tar')).toBe(true);
    expect((err as Error).message).toContain('checksum');
  });

  it('refuses a truncated entry', () => {
    const full = tar([{ name: 'policy.wasm', data: 'x'.repeat(2000) }], { noEnd: true });
    const err = thrown(() => readTar(full.subarray(0, 1024), limits));
    expect(isIdentityError(err, 'policy-bundle-invalid-tar')).toBe(true);
    expect((err as Error).message).toContain('truncated');
  });

  it('refuses non-USTAR headers and base-256 sizes', () => {
    expect(
      isIdentityError(
        thrown(() => readTar(tar([{ name: 'a', data: 'x', magic: 'xxxxx\0' }]), limits)),
        'policy-bundle-invalid-tar',
      ),
    ).toBe(true);
    const huge = `\x80${'\0'.repeat(10)}\x01`;
    expect(
      isIdentityError(
        thrown(() => readTar(tar([{ name: 'a', sizeField: huge }]), limits)),
        'policy-bundle-invalid-tar',
      ),
    ).toBe(true);
  });

  it('refuses names that climb out with ..', () => {
    const err = thrown(() => readTar(tar([{ name: 'a/../../etc/passwd', data: 'x' }]), limits));
    expect(isIdentityError(err, 'policy-bundle-invalid-path')).toBe(true);
    expect(
      isIdentityError(
        thrown(() => normalizeEntryName('..')),
        'policy-bundle-invalid-path',
      ),
    ).toBe(true);
    expect(normalizeEntryName('//a/./b//c')).toBe('a/b/c');
  });

  it('refuses the same file twice (ambiguous which wins)', () => {
    const err = thrown(() =>
      readTar(
        tar([
          { name: '/policy.wasm', data: 'a' },
          { name: 'policy.wasm', data: 'b' },
        ]),
        limits,
      ),
    );
    expect(isIdentityError(err, 'policy-bundle-duplicate-entry')).toBe(true);
  });

  it('caps the number of entries, directories and extended headers included', () => {
    const entries: TarEntrySpec[] = Array.from({ length: 11 }, (_, i) => ({ name: `d${i}/`, type: '5' }));
    expect(readTar(tar(entries.slice(0, 10)), { maxBytes: 1 << 20, maxEntries: 10 })).toEqual([]);
    const err = thrown(() => readTar(tar(entries), { maxBytes: 1 << 20, maxEntries: 10 }));
    expect(isIdentityError(err, 'policy-bundle-too-many-entries')).toBe(true);
  });
});

describe('gunzipBounded', () => {
  it('refuses a zip bomb past the decompressed limit without inflating it all', async () => {
    const bomb = new Uint8Array(gzipSync(Buffer.alloc(32 << 20)));
    expect(bomb.length).toBeLessThan(64 << 10);
    const err = await rejection(gunzipBounded(bomb, 1 << 20));
    expect(isIdentityError(err, 'policy-bundle-too-large')).toBe(true);
  });

  it('refuses bytes that are not gzip', async () => {
    expect(
      isIdentityError(
        await rejection(gunzipBounded(new Uint8Array([1, 2, 3]), 100)),
        'policy-bundle-not-gzip',
      ),
    ).toBe(true);
    const corrupt = new Uint8Array(gzipSync(Buffer.from('hello world')));
    corrupt[12] = (corrupt[12] ?? 0) ^ 0xff;
    expect(isIdentityError(await rejection(gunzipBounded(corrupt, 100)), 'policy-bundle-not-gzip')).toBe(
      true,
    );
  });
});

describe('parseBundleFiles / readBundle', () => {
  const wasm = { name: 'policy.wasm', data: new Uint8Array([0, 97, 115, 109]) };
  const text = (name: string, s: string) => ({ name, data: new Uint8Array(Buffer.from(s)) });

  it('reads the manifest, the module and the data', () => {
    const b = parseBundleFiles([wasm, text('.manifest', manifest), text('data.json', '{"a":{"x":1}}')]);
    expect(b.manifest.revision).toBe('r1');
    expect(b.manifest.wasm).toEqual([{ entrypoint: 'p/allow', module: '/policy.wasm' }]);
    expect(b.data).toEqual({ a: { x: 1 } });
    expect(b.signed).toBe(false);
  });

  it('places nested data.json files at their directory and merges objects', () => {
    const b = parseBundleFiles([
      wasm,
      text('data.json', '{"agents":{"a1":{"score":1}}}'),
      text('agents/a2/data.json', '{"score":2}'),
      text('config/data.json', '{"td":"example.org"}'),
    ]);
    expect(b.data).toEqual({ agents: { a1: { score: 1 }, a2: { score: 2 } }, config: { td: 'example.org' } });
  });

  it('refuses two data files setting the same value', () => {
    const err = thrown(() =>
      parseBundleFiles([wasm, text('data.json', '{"a":{"b":1}}'), text('a/data.json', '{"b":2}')]),
    );
    expect(isIdentityError(err, 'policy-bundle-data-conflict')).toBe(true);
  });

  it('keeps a __proto__ key as plain data', () => {
    const b = parseBundleFiles([
      wasm,
      text('data.json', '{"__proto__":{"polluted":true}}'),
      text('x/data.json', '{"y":1}'),
    ]);
    expect(Object.getPrototypeOf(b.data)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(JSON.stringify(b.data)).toBe('{"__proto__":{"polluted":true},"x":{"y":1}}');
  });

  it('refuses a bundle without policy.wasm', () => {
    const err = thrown(() => parseBundleFiles([text('.manifest', '{}'), text('data.json', '{}')]));
    expect(isIdentityError(err, 'policy-bundle-missing-wasm')).toBe(true);
    expect((err as Error).message).toContain('/policy.wasm');
  });

  it.each([
    ['not JSON', '{'],
    ['an array', '[]'],
    ['a numeric revision', '{"revision": 5}'],
    ['non-string roots', '{"roots": [1]}'],
    ['a malformed wasm list', '{"wasm": [{"entrypoint": 1}]}'],
  ])('refuses a manifest that is %s', (_what, body) => {
    const err = thrown(() => parseBundleFiles([wasm, text('.manifest', body)]));
    expect(isIdentityError(err, 'policy-bundle-invalid-manifest')).toBe(true);
  });

  it('refuses data that is not a UTF-8 JSON object, and YAML data', () => {
    expect(
      isIdentityError(
        thrown(() => parseBundleFiles([wasm, text('data.json', '[1]')])),
        'policy-bundle-invalid-data',
      ),
    ).toBe(true);
    expect(
      isIdentityError(
        thrown(() => parseBundleFiles([wasm, text('data.json', '{')])),
        'policy-bundle-invalid-data',
      ),
    ).toBe(true);
    const bad = { name: 'data.json', data: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) };
    expect(
      isIdentityError(
        thrown(() => parseBundleFiles([wasm, bad])),
        'policy-bundle-invalid-data',
      ),
    ).toBe(true);
    expect(
      isIdentityError(
        thrown(() => parseBundleFiles([wasm, text('data.yaml', 'a: 1')])),
        'policy-bundle-unsupported',
      ),
    ).toBe(true);
  });

  it('refuses a manifest naming more than one module', () => {
    const two = JSON.stringify({
      wasm: [
        { entrypoint: 'a/x', module: '/a.wasm' },
        { entrypoint: 'b/x', module: '/b.wasm' },
      ],
    });
    expect(
      isIdentityError(
        thrown(() => parseBundleFiles([wasm, text('.manifest', two)])),
        'policy-bundle-unsupported',
      ),
    ).toBe(true);
  });

  it('notes a signature file without claiming to verify it', () => {
    expect(parseBundleFiles([wasm, text('.signatures.json', '{}')]).signed).toBe(true);
  });

  it('deep-data-json bomb: data nested 100 000 levels is refused as invalid data, not a RangeError', () => {
    const n = 100_000;
    const deep = `${'{"a":'.repeat(n)}{}${'}'.repeat(n)}`;
    // Two files sharing the path make the merge recurse all the way down.
    const err = thrown(() => parseBundleFiles([wasm, text('data.json', deep), text('a/data.json', deep)]));
    expect(isIdentityError(err, 'policy-bundle-invalid-data')).toBe(true);
    expect((err as Error).message).toMatch(/nests deeper than 256 levels/);
    // Arrays count as levels too; a deep but legal document still loads.
    expect(() =>
      parseBundleFiles([wasm, text('data.json', `{"a":${'['.repeat(300)}${']'.repeat(300)}}`)]),
    ).toThrow(/nests deeper/);
    const ok = `${'{"a":'.repeat(200)}1${'}'.repeat(200)}`;
    expect(parseBundleFiles([wasm, text('data.json', ok)]).data).toHaveProperty('a');
  });

  it('deep-directory bomb: a data.json under thousands of directories is refused', async () => {
    const dir = 'd/'.repeat(20_000);
    const bytes = tgz([
      { name: '/policy.wasm', data: opaLikeModule({ entrypoints: { 'p/allow': 0 } }) },
      paxPath(`/${dir}data.json`),
      { name: 'x/data.json', data: '{"a":1}' },
      paxPath(`/${dir}d/data.json`),
      { name: 'y/data.json', data: '{"b":2}' },
    ]);
    const err = await rejection(PolicyEngine.fromBundle(bytes));
    expect(isIdentityError(err, 'policy-bundle-invalid-data')).toBe(true);
    expect((err as Error).message).toMatch(/directories included/);
  });

  it('refuses a compressed bundle over the limit before inflating it', async () => {
    const bytes = tgz([{ name: 'policy.wasm', data: new Uint8Array(4096).map((_, i) => (i * 7919) % 251) }]);
    const err = await rejection(readBundle(bytes, { ...bundleLimits, maxCompressedBytes: bytes.length - 1 }));
    expect(isIdentityError(err, 'policy-bundle-too-large')).toBe(true);
    await expect(readBundle(bytes, bundleLimits)).resolves.toBeDefined();
  });

  it('refuses a bundle whose manifest lists an entrypoint the module lacks', async () => {
    const bytes = tgz([
      { name: '/policy.wasm', data: opaLikeModule({ entrypoints: { 'p/allow': 0 } }) },
      {
        name: '/.manifest',
        data: JSON.stringify({ wasm: [{ entrypoint: 'p/other', module: '/policy.wasm' }] }),
      },
    ]);
    const err = await rejection(PolicyEngine.fromBundle(bytes));
    expect(isIdentityError(err, 'policy-bundle-invalid-manifest')).toBe(true);
    expect((err as Error).message).toContain('p/other');
  });

  it('refuses a zip bomb through the engine with the configured cap', async () => {
    const bytes = new Uint8Array(gzipSync(tar([{ name: 'policy.wasm', data: new Uint8Array(8 << 20) }])));
    const err = await rejection(
      PolicyEngine.fromBundle(bytes, { limits: { maxDecompressedBytes: 1 << 20 } }),
    );
    expect(isIdentityError(err, 'policy-bundle-too-large')).toBe(true);
  });
});
