/**
 * CPU reference of the SwiGLU activation of the Llama MLP, `silu(gate) * up`, with
 * silu(g) = g * sigmoid(g) (HF `ACT2FN["silu"]`).
 *
 * Shapes: gate, up, out, dGate, dUp, dOut: (n), flat (N, ffn).
 *
 * Backward: d/dup = dOut * silu(g); d/dgate = dOut * up * sigmoid(g) * (1 + g * (1 - sigmoid(g))).
 *
 * @module
 */

import type { FloatArray } from "./types.ts";

/**
 * Logistic sigmoid that never overflows: exp is only taken of -|g| (in (0, 1]), so large |g|
 * gives 0 or 1 instead of inf / inf.
 */
export function sigmoid(g: number): number {
  const e = Math.exp(-Math.abs(g));
  return g >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/** out (n) = silu(gate) * up. */
export function swigluForward(out: FloatArray, gate: FloatArray, up: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    out[i] = g * sigmoid(g) * up[i];
  }
}

/** dGate, dUp (n) = gradients of silu(gate) * up given dOut (n); overwritten. */
export function swigluBackward(
  dGate: FloatArray,
  dUp: FloatArray,
  dOut: FloatArray,
  gate: FloatArray,
  up: FloatArray,
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i], u = up[i], d = dOut[i];
    const s = sigmoid(g);
    dUp[i] = d * g * s;
    dGate[i] = d * u * s * (1 + g * (1 - s));
  }
}
