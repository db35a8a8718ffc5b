/** A minimal USTAR writer for unit tests, with knobs to produce broken archives on purpose. */
import { gzipSync } from 'node:zlib';

export interface TarEntrySpec {
  readonly name: string;
  readonly data?: string | Uint8Array | undefined;
  /** Type flag: '0' file (default), '5' directory, '2' symlink, 'x' PAX, 'L' GNU long name. */
  readonly type?: string | undefined;
  /** USTAR prefix field. */
  readonly prefix?: string | undefined;
  /** Store a wrong checksum. */
  readonly badChecksum?: boolean | undefined;
  /** Write this size in the header instead of the data's length. */
  readonly sizeField?: string | undefined;
  /** Magic field; default `ustar\0`. */
  readonly magic?: string | undefined;
}

function field(buf: Uint8Array, off: number, len: number, value: string): void {
  const b = Buffer.from(value, 'utf8');
  buf.set(b.subarray(0, len), off);
}

function octal(n: number, len: number): string {
  return `${n.toString(8).padStart(len - 1, '0')}\0`;
}

function header(e: TarEntrySpec, size: number): Uint8Array {
  const h = new Uint8Array(512);
  field(h, 0, 100, e.name);
  field(h, 100, 8, octal(0o644, 8));
  field(h, 108, 8, octal(0, 8));
  field(h, 116, 8, octal(0, 8));
  field(h, 124, 12, e.sizeField ?? octal(size, 12));
  field(h, 136, 12, octal(0, 12));
  field(h, 156, 1, e.type ?? '0');
  field(h, 257, 6, e.magic ?? 'ustar\0');
  field(h, 263, 2, '00');
  if (e.prefix !== undefined) field(h, 345, 155, e.prefix);
  field(h, 148, 8, '        ');
  let sum = 0;
  for (const b of h) sum += b;
  field(h, 148, 8, `${(e.badChecksum ? sum + 1 : sum).toString(8).padStart(6, '0')}\0 `);
  return h;
}

/** A PAX extended header entry setting `path`. */
export function paxPath(path: string): TarEntrySpec {
  const record = (len: number): string => `${len} path=${path}\n`;
  let len = record(0).length;
  while (record(len).length !== len) len = record(len).length;
  return { name: 'PaxHeaders/x', type: 'x', data: record(len) };
}

/** Builds an uncompressed tar archive (with the two zero end blocks unless `noEnd`). */
export function tar(entries: readonly TarEntrySpec[], opts: { noEnd?: boolean } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const data = typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : (e.data ?? new Uint8Array(0));
    parts.push(header(e, data.length));
    const padded = new Uint8Array(Math.ceil(data.length / 512) * 512);
    padded.set(data);
    parts.push(padded);
  }
  if (!opts.noEnd) parts.push(new Uint8Array(1024));
  return new Uint8Array(Buffer.concat(parts));
}

/** gzip'd {@link tar}. */
export function tgz(entries: readonly TarEntrySpec[], opts: { noEnd?: boolean } = {}): Uint8Array {
  return new Uint8Array(gzipSync(tar(entries, opts)));
}
