/**
 * Just enough binary floating point, on BigInt, to compute `units.parse_bytes` exactly as OPA does.
 *
 * OPA parses the amount with Go's `big.Float` at 64 bits of mantissa (round half to even), scales
 * it by powers of five computed at 128/192 bits, multiplies by the unit at 64 bits and truncates
 * to an integer. Reproducing those roundings step by step is what makes `"1.1kb"` give `1100`
 * and `"0.3mib"` give `314572` here as there.
 */

/** A non-negative binary float: `m × 2^e`. */
interface Bin {
  m: bigint;
  e: number;
}

function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

/** Rounds `m × 2^e` to at most `bits` significant bits, half to even. */
function roundBits(x: Bin, bits: number): Bin {
  const len = bitLength(x.m);
  if (len <= bits) return x;
  const shift = len - bits;
  let q = x.m >> BigInt(shift);
  const rem = x.m - (q << BigInt(shift));
  const half = 1n << BigInt(shift - 1);
  if (rem > half || (rem === half && (q & 1n) === 1n)) q += 1n;
  let e = x.e + shift;
  if (bitLength(q) > bits) {
    q >>= 1n;
    e += 1;
  }
  return { m: q, e };
}

/** Correctly rounded `num / den` (both positive) with `bits` significant bits, half to even. */
function divRound(num: bigint, den: bigint, bits: number): Bin {
  let k = bits - (bitLength(num) - bitLength(den)) + 1;
  const quotient = (shift: number): [bigint, bigint, bigint] => {
    const n = shift >= 0 ? num << BigInt(shift) : num;
    const d = shift >= 0 ? den : den << BigInt(-shift);
    return [n / d, n % d, d];
  };
  let [q, r, d] = quotient(k);
  while (bitLength(q) > bits) {
    k -= 1;
    [q, r, d] = quotient(k);
  }
  while (bitLength(q) < bits) {
    k += 1;
    [q, r, d] = quotient(k);
  }
  const twice = r * 2n;
  if (twice > d || (twice === d && (q & 1n) === 1n)) q += 1n;
  let e = -k;
  if (bitLength(q) > bits) {
    q >>= 1n;
    e += 1;
  }
  return { m: q, e };
}

function mulRound(a: Bin, b: Bin, bits: number): Bin {
  return roundBits({ m: a.m * b.m, e: a.e + b.e }, bits);
}

/** 5^n as Go's `Float.pow5` computes it into a 128-bit float. */
function pow5(n: number): Bin {
  if (n <= 27) return { m: 5n ** BigInt(n), e: 0 };
  let z: Bin = { m: 5n ** 27n, e: 0 };
  let f: Bin = { m: 5n, e: 0 };
  let rest = n - 27;
  while (rest > 0) {
    if (rest & 1) z = mulRound(z, f, 128);
    f = mulRound(f, f, 192);
    rest = Math.floor(rest / 2);
  }
  return z;
}

/** Largest result (in bits) we compute; OPA has no bound, we refuse absurd values. */
const MAX_RESULT_BITS = 1100;

/**
 * Parses a decimal number the way Go's `big.Float.SetString` does (precision 64), multiplies it
 * by `unit` at precision 64 and truncates toward zero.
 *
 * @returns the integer, or `undefined` when `num` is not a number Go accepts or the result is
 *   beyond 2^1100.
 */
export function scaleDecimal(num: string, unit: bigint): bigint | undefined {
  const m = /^([+-]?)(?:(\d+)\.?(\d*)|\.(\d+))(?:e([+-]?\d+))?$/.exec(num);
  if (m === null || num.length > 4096) return undefined;
  const negative = m[1] === '-';
  const intDigits = m[2] ?? '';
  const fracDigits = m[3] ?? m[4] ?? '';
  const exponent = m[5] === undefined ? 0 : Number(m[5]);
  const mantissa = BigInt(intDigits + fracDigits || '0');
  if (mantissa === 0n) return 0n;
  const e10 = exponent - fracDigits.length;
  let z: Bin;
  if (e10 === 0) {
    z = roundBits({ m: mantissa, e: 0 }, 64);
  } else {
    const p = pow5(Math.abs(e10));
    if (e10 > 0) {
      z = roundBits({ m: mantissa * p.m, e: p.e + e10 }, 64);
    } else {
      const q = divRound(mantissa, p.m, 64);
      z = { m: q.m, e: q.e - p.e + e10 };
    }
  }
  const scaled = roundBits({ m: z.m * unit, e: z.e }, 64);
  if (bitLength(scaled.m) + scaled.e > MAX_RESULT_BITS) return undefined;
  const magnitude = scaled.e >= 0 ? scaled.m << BigInt(scaled.e) : scaled.m >> BigInt(-scaled.e);
  return negative ? -magnitude : magnitude;
}
