/**
 * Conversions between float32 and the two 16-bit float formats of checkpoints: IEEE binary16
 * (safetensors `F16`, torch.float16) and bfloat16 (`BF16`, torch.bfloat16). Widening is exact;
 * narrowing rounds to nearest, ties to even, as torch's `.half()` and `.bfloat16()` do (checked
 * against torch in tests/io/hf_fixture_test.ts).
 *
 * Values travel as bit patterns (`Uint32Array` views) so that NaN payloads and `-0` survive.
 *
 * @module
 */

let f16Table: Uint32Array | undefined;

/**
 * float32 bit patterns of all 65536 half values: 256 KiB, built on first use. A table beats
 * branching per element and is exact by construction.
 */
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const table = new Uint32Array(65536);
  const scratch = new Float32Array(1);
  const scratchBits = new Uint32Array(scratch.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) {
      // Zero or subnormal: mantissa * 2^-24, exact in float32 (which has 23+1 bits and a wider range).
      scratch[0] = mantissa * 2 ** -24;
      table[h] = (sign | scratchBits[0]) >>> 0;
    } else if (exponent === 0x1f) {
      // Inf or NaN: all-ones exponent, payload shifted into the top of the float32 mantissa.
      table[h] = (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
    } else {
      // Normal: rebias the exponent from 15 to 127.
      table[h] = (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
    }
  }
  f16Table = table;
  return table;
}

/**
 * Half-precision bit pattern of a float32 bit pattern, rounded to nearest even. Overflow goes to
 * ±inf, underflow to subnormals or ±0; NaN becomes the quiet NaN 0x7e00 with its sign, as
 * c10's `fp16_ieee_from_fp32_value` does.
 */
export function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00;
  const halfExponent = exponent - 112; // unbiased exponent rebiased from 127 to 15
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Subnormal half (or zero): value = m * 2^(exponent-150) = (m >> shift) * 2^-24.
    if (halfExponent < -10) return sign; // below half of the smallest subnormal, 2^-25
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent; // 14..24
    return sign | roundShift(significand, shift);
  }
  // Normal half; a carry out of the mantissa correctly bumps the exponent (up to inf).
  return sign | roundShift((halfExponent << 23) | mantissa, 13);
}

/** `value >> shift`, rounded to nearest with ties to even. */
function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  const remainder = value & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  return remainder > halfway || (remainder === halfway && (kept & 1) === 1) ? kept + 1 : kept;
}

/**
 * bfloat16 bit pattern of a float32 bit pattern, rounded to nearest even (carry into the exponent
 * gives inf on overflow). NaN becomes 0x7fc0, as c10's `round_to_nearest_even` does.
 */
export function f32BitsToBf16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  const roundingBias = 0x7fff + ((bits >>> 16) & 1);
  return Math.floor(((bits >>> 0) + roundingBias) / 65536);
}

/** Reads `count` little-endian 16-bit values from `bytes` at `offset` and widens them exactly. */
export function decode16(
  bytes: Uint8Array,
  offset: number,
  count: number,
  format: "F16" | "BF16",
): Float32Array {
  const out = new Float32Array(count);
  const outBits = new Uint32Array(out.buffer);
  if (format === "F16") {
    const table = f16ToF32Table();
    for (let i = 0, p = offset; i < count; i++, p += 2) {
      outBits[i] = table[bytes[p] | (bytes[p + 1] << 8)];
    }
  } else {
    for (let i = 0, p = offset; i < count; i++, p += 2) {
      outBits[i] = (bytes[p] << 16) | (bytes[p + 1] << 24);
    }
  }
  return out;
}

/** Narrows float32 values to 16-bit little-endian bytes, rounding to nearest even. */
export function encode16(
  values: Float32Array,
  format: "F16" | "BF16",
  out: Uint8Array,
  offset: number,
): void {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const narrow = format === "F16" ? f32BitsToF16Bits : f32BitsToBf16Bits;
  for (let i = 0, p = offset; i < values.length; i++, p += 2) {
    const h = narrow(bits[i]);
    out[p] = h & 0xff;
    out[p + 1] = h >>> 8;
  }
}
