/**
 * CPU reference of RMSNorm as HF transformers' LlamaRMSNorm computes it (in f32):
 *
 *   variance = mean(x^2) over C,  rstd = 1 / sqrt(variance + eps),  out = w * (x * rstd)
 *
 * Shapes: x, out, dx, dOut: (N, C); w, dw: (C); rstd: (N), kept by the forward for the backward.
 *
 * Backward, for one row with g = dOut * w and r = rstd (d rstd / d x_j = -r^3 x_j / C):
 *
 *   dx_j = r * (g_j - x_j * r^2 * sum_i(g_i x_i) / C)
 *   dw_j += sum over rows of dOut_j * x_j * r
 *
 * Sums run in JS numbers (float64) and are stored once.
 *
 * @module
 */

import type { FloatArray } from "./types.ts";

/** out (N,C) = w * (x * rstd); rstd (N) = 1/sqrt(mean(x^2) + eps). */
export function rmsnormForward(
  out: FloatArray,
  rstd: FloatArray,
  x: FloatArray,
  w: FloatArray,
  N: number,
  C: number,
  eps: number,
): void {
  for (let n = 0; n < N; n++) {
    const row = n * C;
    let sumSq = 0;
    for (let c = 0; c < C; c++) sumSq += x[row + c] * x[row + c];
    // Stored first so that an f32 backend normalises with the same rounded rstd it keeps.
    rstd[n] = 1 / Math.sqrt(sumSq / C + eps);
    const r = rstd[n];
    for (let c = 0; c < C; c++) out[row + c] = w[c] * (x[row + c] * r);
  }
}

/**
 * dx (N,C) = (or += with `accumulateDx`) the input gradient; dw (C) += the weight gradient, rows
 * summed in ascending order.
 */
export function rmsnormBackward(
  dx: FloatArray,
  dw: FloatArray,
  dOut: FloatArray,
  x: FloatArray,
  w: FloatArray,
  rstd: FloatArray,
  N: number,
  C: number,
  accumulateDx: boolean,
): void {
  // dw first: it reads dOut, so dx may then overwrite dOut in place.
  for (let c = 0; c < C; c++) {
    let sum = dw[c];
    for (let n = 0; n < N; n++) sum += dOut[n * C + c] * x[n * C + c] * rstd[n];
    dw[c] = sum;
  }
  for (let n = 0; n < N; n++) {
    const row = n * C;
    const r = rstd[n];
    let dot = 0; // sum_i dOut_i * w_i * x_i
    for (let c = 0; c < C; c++) dot += dOut[row + c] * w[c] * x[row + c];
    const k = r * r * dot / C;
    for (let c = 0; c < C; c++) {
      const grad = r * (dOut[row + c] * w[c] - x[row + c] * k);
      dx[row + c] = accumulateDx ? dx[row + c] + grad : grad;
    }
  }
}
