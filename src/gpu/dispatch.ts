/**
 * Small helpers every kernel shares: the lowest f32 as a WGSL literal, f32 bit packing for uniform
 * words, and the 1-D dispatch grid (re-exported by src/gpu/context.ts).
 *
 * @module
 */

/**
 * The lowest finite f32 as an exact WGSL literal (-(2 - 2^-23) * 2^127), the start of every
 * running max. A decimal such as `-3.4028235e38` lies just beyond it: WGSL makes an
 * unrepresentable f32 literal a shader-creation error, which Chromium's compiler (Tint) enforces
 * and Deno's (naga) does not, so the hexadecimal form is the one both accept.
 */
export const F32_LOWEST = "-0x1.fffffep+127f";

/** Returns the bit pattern of an f32, for packing floats into u32 uniform words. */
export function f32bits(x: number): number {
  F32[0] = x;
  return U32[0];
}
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/**
 * Workgroup counts covering `n` invocations of a 1-D kernel of `workgroupSize`, folded into two
 * dimensions when one is not enough. Kernels recover the linear index as
 * `gid.x + gid.y * nwg.x * WG` (`nwg` = `@builtin(num_workgroups)`).
 */
export function grid1d(n: number, workgroupSize: number, maxPerDim = 65535): [number, number] {
  const groups = Math.ceil(n / workgroupSize);
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}
