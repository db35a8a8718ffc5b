/** Reads Prometheus text exposition (what `/metrics` serves) into series → value, for assertions. */

/** `name{a="1",b="2"}` → value; label order as served. */
export type Series = Map<string, number>;

export function parsePrometheus(text: string): Series {
  const out: Series = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** The value of `name` with exactly these labels (any order), or undefined. */
export function seriesValue(
  series: Series,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const [key, value] of series) {
    const brace = key.indexOf('{');
    const n = brace === -1 ? key : key.slice(0, brace);
    if (n !== name) continue;
    const got: Record<string, string> = {};
    if (brace !== -1) {
      for (const m of key.slice(brace + 1, -1).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        got[m[1]!] = m[2]!;
      }
    }
    const keys = Object.keys(labels);
    if (keys.length === Object.keys(got).length && keys.every((k) => got[k] === labels[k])) return value;
  }
  return undefined;
}

/** Fetches and parses `/metrics`. */
export async function scrape(opsUrl: string): Promise<Series> {
  const res = await fetch(`${opsUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parsePrometheus(await res.text());
}
