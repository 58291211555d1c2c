/**
 * CPU reference of the elementwise ops: residual adds, copies (optionally accumulating, for
 * gradients that reach a tensor along two paths) and fills.
 *
 * Shapes: every tensor is flat with at least `n` elements; only the first `n` are touched.
 * Each element is computed in JS numbers (float64) and stored once, so a Float64Array backend
 * keeps full precision and a Float32Array backend rounds once, as an f32 GPU add does.
 *
 * @module
 */

import type { FloatArray } from "./types.ts";
import { dropoutKey, dropoutMultiplier, dropThreshold, mix32 } from "../backend/mod.ts";

/** out (n) = a + b. `out` may be `a` or `b` (in place). */
export function add(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/** out (n) = a, or out += a with `accumulate`. */
export function copy(out: FloatArray, a: FloatArray, n: number, accumulate = false): void {
  if (accumulate) {
    for (let i = 0; i < n; i++) out[i] = out[i] + a[i];
  } else if (out !== a) {
    for (let i = 0; i < n; i++) out[i] = a[i];
  }
}

/** Sets out[0..n) to `value`. */
export function fill(out: FloatArray, value: number, n: number): void {
  out.fill(value, 0, n);
}

/**
 * out (n) (+)= keep(i) ? x[i] * scale / (1 - p) : 0 (src/backend/op_args.ts DropoutArgs). The
 * product is rounded to the output's precision before an accumulation, as the f32 kernel does.
 */
export function dropout(
  out: FloatArray,
  x: FloatArray,
  n: number,
  p: number,
  scale: number,
  seed: number,
  salt: number,
  accumulate: boolean,
): void {
  const m = dropoutMultiplier(p, scale);
  const round = out instanceof Float32Array ? Math.fround : (v: number) => v;
  const threshold = dropThreshold(p);
  const key = dropoutKey(seed, salt);
  for (let i = 0; i < n; i++) {
    const keep = p === 0 || mix32(mix32(key ^ i)) >= threshold;
    const v = keep ? round(x[i] * m) : 0;
    out[i] = accumulate ? out[i] + v : v;
  }
}
