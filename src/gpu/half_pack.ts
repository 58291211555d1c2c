/**
 * Device layout of half-precision frozen weights (bf16, f16): two elements per u32 word, element
 * 2w in the low half of word w. Sizes, and the packing of host f32 values (each exactly
 * representable) into words; src/gpu/kernels/weight_load.ts widens them back in WGSL.
 *
 * @module
 */

import type { DType } from "../backend/mod.ts";
import { f32BitsToBf16Bits, f32BitsToF16Bits } from "../io/half.ts";

/** Device bytes per element of `dtype` (half tensors pack two elements per u32 word). */
export function elementBytes(dtype: DType): number {
  return dtype === "bf16" || dtype === "f16" ? 2 : 4;
}

/** Device bytes of a tensor: whole u32 words, at least one. */
export function tensorBytes(t: { size: number; dtype: DType }): number {
  return Math.max(4, Math.ceil(t.size * elementBytes(t.dtype) / 4) * 4);
}

/**
 * f32 values as little-endian 16-bit words of `dtype`, two per u32. Each value must be exactly
 * representable (a weight read from a checkpoint of that dtype is): a frozen weight is never
 * rounded on its way to the device.
 */
export function packHalf(values: Float32Array, dtype: "bf16" | "f16"): Uint32Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const narrow = dtype === "bf16" ? f32BitsToBf16Bits : f32BitsToF16Bits;
  const out = new Uint32Array(Math.ceil(values.length / 2));
  const back = new Float32Array(1);
  const backBits = new Uint32Array(back.buffer);
  for (let i = 0; i < values.length; i++) {
    const h = narrow(bits[i]);
    backBits[0] = dtype === "bf16" ? h << 16 : 0;
    if (dtype === "f16") back[0] = halfToF32(h);
    if (back[0] !== values[i] && !(Number.isNaN(back[0]) && Number.isNaN(values[i]))) {
      throw new Error(
        `value ${values[i]} at element ${i} is not exactly a ${dtype}; frozen weights are held ` +
          `in ${dtype} only when the checkpoint stores them so (use --frozen-dtype f32)`,
      );
    }
    out[i >> 1] |= h << (16 * (i & 1));
  }
  return out;
}

/** The f32 value of f16 bits. */
function halfToF32(h: number): number {
  const e = (h >> 10) & 0x1f, m = h & 0x3ff, sign = h & 0x8000 ? -1 : 1;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}
