/**
 * JWT-SVID validation, side by side, in one run: our `validateJwtSvid` against bare
 * `jose.jwtVerify` with the same token, the same key and the same algorithm (ES256 and RS256).
 *
 * Run: npm run bench:jwt   (BENCH_ROUNDS=<paired rounds>, default 16; BENCH_ROUND_MS=<ms>, default 250)
 *
 * The two contenders alternate in short paired rounds (order flipped every round), so load from
 * other processes hits both alike; the ratio reported is the median of the per-round ratios.
 * "sequential" awaits one validation at a time; "64 in flight" starts 64 and awaits them together
 * (jose then spreads WebCrypto work over the libuv pool; ours verifies synchronously). CPU µs is
 * `process.cpuUsage()` per token, all threads of the process.
 *
 * jose gets its fairest setup: a CryptoKey imported once, and `algorithms`, `audience` and
 * `requiredClaims` set (what a SPIFFE relying party must pass; without them jose checks less).
 */
import { cpus } from 'node:os';
import { importJWK, jwtVerify } from 'jose';
import { BundleSet } from '../src/bundle/index.js';
import { validateJwtSvid } from '../src/svid/index.js';
import { createJwtAuthority, jwtBundleOf, mintJwtSvid } from '../test/fixtures/token.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 16);
const ROUND_MS = Number(process.env['BENCH_ROUND_MS'] ?? 250);
const IN_FLIGHT = 64;
const SUB = 'spiffe://example.org/workload';
const AUD = 'spiffe://example.org/api';

type Op = () => Promise<unknown>;

interface Tally {
  tokens: number;
  ms: number;
  cpuUs: number;
  latencies: number[];
  roundRates: number[];
}

function newTally(): Tally {
  return { tokens: 0, ms: 0, cpuUs: 0, latencies: [], roundRates: [] };
}

/** Runs `op` (one token) or a batch of `batch` concurrent ops for about `ms`, into `t`. */
async function round(op: Op, batch: number, ms: number, t: Tally | undefined): Promise<void> {
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let tokens = 0;
  while (performance.now() - start < ms) {
    const t0 = performance.now();
    if (batch === 1) await op();
    else await Promise.all(Array.from({ length: batch }, op));
    t?.latencies.push(performance.now() - t0);
    tokens += batch;
  }
  const elapsed = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  if (t === undefined) return;
  t.tokens += tokens;
  t.ms += elapsed;
  t.cpuUs += cpu.user + cpu.system;
  t.roundRates.push((tokens * 1000) / elapsed);
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

async function compare(label: string, ours: Op, jose: Op, batch: number): Promise<void> {
  const a = newTally();
  const b = newTally();
  await round(ours, batch, 300, undefined);
  await round(jose, batch, 300, undefined);
  for (let r = 0; r < ROUNDS; r++) {
    const order: [Op, Tally][] =
      r % 2 === 0
        ? [
            [ours, a],
            [jose, b],
          ]
        : [
            [jose, b],
            [ours, a],
          ];
    for (const [op, t] of order) await round(op, batch, ROUND_MS, t);
  }
  const ratios = a.roundRates.map((rate, i) => rate / b.roundRates[i]!);
  const unit = batch === 1 ? 'token' : `batch of ${batch}`;
  console.log(`\n${label}`);
  console.log(`  contender              tokens/s   p50 µs/${unit}   p99 µs/${unit}   CPU µs/token`);
  for (const [name, t] of [
    ['validateJwtSvid', a],
    ['jose.jwtVerify ', b],
  ] as const) {
    console.log(
      `  ${name}  ${fmt((t.tokens * 1000) / t.ms).padStart(12)}   ${fmt(quantile(t.latencies, 0.5) * 1000, 1).padStart(14)}   ${fmt(
        quantile(t.latencies, 0.99) * 1000,
        1,
      ).padStart(14)}   ${fmt(t.cpuUs / t.tokens, 1).padStart(12)}`,
    );
  }
  console.log(
    `  ratio ours/jose: median of ${ROUNDS} paired rounds ${quantile(ratios, 0.5).toFixed(2)}× ` +
      `(min ${Math.min(...ratios).toFixed(2)}×, max ${Math.max(...ratios).toFixed(2)}×), totals ${(
        a.tokens / a.ms / (b.tokens / b.ms)
      ).toFixed(2)}×`,
  );
}

async function main(): Promise<void> {
  console.log(
    `jwt-svid bench: Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ` +
      `${ROUNDS} rounds × ${ROUND_MS} ms per contender`,
  );
  for (const alg of ['ES256', 'RS256'] as const) {
    const authority = createJwtAuthority({ trustDomain: 'example.org', alg });
    const bundles = new BundleSet(jwtBundleOf(authority));
    const token = mintJwtSvid(authority, { sub: SUB, aud: AUD, ttlSec: 24 * 3600 });
    const joseKey = await importJWK({ ...authority.jwk, alg }, alg);
    const joseOptions = { algorithms: [alg], audience: AUD, requiredClaims: ['exp', 'sub', 'aud'] };
    const ours: Op = () => validateJwtSvid(token, bundles, AUD);
    const jose: Op = () => jwtVerify(token, joseKey, joseOptions);
    // Both sides must accept the token, or the comparison means nothing.
    const [mine, theirs] = await Promise.all([
      validateJwtSvid(token, bundles, AUD),
      jwtVerify(token, joseKey, joseOptions),
    ]);
    if (mine.spiffeId.toString() !== SUB || theirs.payload.sub !== SUB)
      throw new Error('benchmark token rejected');
    await compare(`${alg} sequential`, ours, jose, 1);
    await compare(`${alg} ${IN_FLIGHT} in flight`, ours, jose, IN_FLIGHT);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
