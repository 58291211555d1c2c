/**
 * The integers of the seeded dropout op (src/backend/op_args.ts DropoutArgs), shared by both
 * backends so a mask is the same bits on the CPU and on WebGPU: element i of a call is kept when
 * `mix32(mix32(key ^ i)) >= threshold`, with `key = mix32(mix32(seed ^ 0x9e3779b9) ^ salt)`.
 *
 * @module
 */

/** Bias-reduced 32-bit integer hash (lowbias32), as in the WGSL kernel. */
export function mix32(x: number): number {
  x = x >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The drop threshold of probability p: element i is kept when its hash ≥ it. */
export function dropThreshold(p: number): number {
  return Math.min(0xffffffff, Math.round(p * 4294967296)) >>> 0;
}

/** The key of (seed, salt); element i is kept when mix32(mix32(key ^ i)) ≥ the threshold. */
export function dropoutKey(seed: number, salt: number): number {
  return mix32(mix32((seed >>> 0) ^ 0x9e3779b9) ^ (salt >>> 0));
}

/** The multiplier of kept elements, scale / (1 - p) rounded to f32 (as the GPU receives it). */
export function dropoutMultiplier(p: number, scale: number): number {
  return Math.fround(scale / (1 - p));
}
