/**
 * CPU reference of rotary position embeddings in HF's rotate-half convention
 * (`q * cos + rotate_half(q) * sin`): the first and second halves of each head form the pairs,
 * not interleaved neighbours.
 *
 * Shapes: x (B*T, H, D), rotated in place; cos, sin (T, D/2) from `ropeTables`. Row r of x is at
 * position r % T. For i < D/2, with x1 = x[i], x2 = x[i + D/2]:
 *
 *   out[i] = x1 * cos - x2 * sin,   out[i + D/2] = x2 * cos + x1 * sin
 *
 * The rotation is orthogonal, so its backward (the transpose) is the rotation by -angle:
 * `inverse` negates sin.
 *
 * @module
 */

import type { FloatArray } from "./types.ts";

/** Rotates x (BT, H, D) in place by the angles of cos, sin (T, D/2); by -angle if `inverse`. */
export function rope(
  x: FloatArray,
  cos: FloatArray,
  sin: FloatArray,
  BT: number,
  T: number,
  H: number,
  D: number,
  inverse: boolean,
): void {
  const half = D / 2;
  const sign = inverse ? -1 : 1;
  for (let r = 0; r < BT; r++) {
    const table = (r % T) * half;
    for (let h = 0; h < H; h++) {
      const base = (r * H + h) * D;
      for (let i = 0; i < half; i++) {
        const c = cos[table + i], s = sign * sin[table + i];
        const x1 = x[base + i], x2 = x[base + i + half];
        x[base + i] = x1 * c - x2 * s;
        x[base + i + half] = x2 * c + x1 * s;
      }
    }
  }
}
