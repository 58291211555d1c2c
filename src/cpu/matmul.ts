/**
 * CPU reference of the matmul op and of the column sum used for bias gradients.
 *
 * Shapes (row-major, flat):
 *   out: (m, n)
 *   a:   (m, k), or (k, m) when `transA`
 *   b:   (k, n), or (n, k) when `transB` (a weight in HF `[out, in]` layout)
 *   bias: (n)
 *
 * Sums run in JS numbers (float64) and are stored once, so a Float64Array backend gives the
 * precision that finite-difference gradient checks need.
 *
 * @module
 */

import type { FloatArray } from "./types.ts";

/** Options of {@link matmul}; the same meaning as `MatmulOptions` in src/backend/ops.ts. */
export interface CpuMatmulOptions {
  /** `a` is stored as `(k, m)`. @default false */
  transA?: boolean;
  /** `b` is stored as `(n, k)`. @default false */
  transB?: boolean;
  /** `out += a @ b + bias` instead of `out = a @ b + bias`. @default false */
  accumulate?: boolean;
  /** Bias `(n)` added to every row of the product. @default undefined */
  bias?: FloatArray;
}

/**
 * out (m,n) (+)= op(a) @ op(b) [+ bias], for every combination of `transA` and `transB`.
 *
 * The loop order of each variant walks the operands along their stored rows, so the CPU
 * fallback backend stays usable for small models.
 *
 * @example
 * ```ts
 * const y = new Float32Array(2 * 3);
 * // y (2,3) = x (2,4) @ W^T with W (3,4) in HF [out, in] layout
 * matmul(y, x, W, 2, 3, 4, { transB: true, bias });
 * ```
 */
export function matmul(
  out: FloatArray,
  a: FloatArray,
  b: FloatArray,
  m: number,
  n: number,
  k: number,
  options: CpuMatmulOptions = {},
): void {
  const { transA = false, transB = false, accumulate = false, bias } = options;
  checkSize("out", out, m * n);
  checkSize("a", a, m * k);
  checkSize("b", b, k * n);
  if (bias) checkSize("bias", bias, n);
  for (const input of bias ? [a, b, bias] : [a, b]) {
    if (overlaps(out, input)) throw new Error("matmul: out overlaps an input; use another array");
  }
  // One row of the result, summed in float64 before the single store.
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    if (transB) {
      // row[j] = sum_p A[i,p] * b[j,p]: dot products along the rows of b.
      for (let j = 0; j < n; j++) {
        let sum = 0;
        const bj = j * k;
        if (transA) { for (let p = 0; p < k; p++) sum += a[p * m + i] * b[bj + p]; }
        else {
          const ai = i * k;
          for (let p = 0; p < k; p++) sum += a[ai + p] * b[bj + p];
        }
        row[j] = sum;
      }
    } else {
      // row += A[i,p] * b[p,:]: axpy along the rows of b.
      row.fill(0);
      for (let p = 0; p < k; p++) {
        const aip = transA ? a[p * m + i] : a[i * k + p];
        const bp = p * n;
        for (let j = 0; j < n; j++) row[j] += aip * b[bp + j];
      }
    }
    const oi = i * n;
    for (let j = 0; j < n; j++) {
      const value = bias ? row[j] + bias[j] : row[j];
      out[oi + j] = accumulate ? out[oi + j] + value : value;
    }
  }
}

/**
 * out (cols) (+)= sum over rows of x (rows, cols): the gradient of a bias broadcast over rows.
 * Rows are summed in ascending order.
 */
export function colSum(
  out: FloatArray,
  x: FloatArray,
  rows: number,
  cols: number,
  accumulate: boolean,
): void {
  checkSize("out", out, cols);
  checkSize("x", x, rows * cols);
  const sums = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) sums[c] += x[base + c];
  }
  for (let c = 0; c < cols; c++) out[c] = accumulate ? out[c] + sums[c] : sums[c];
}

/** Whether two arrays share bytes (out is written row by row while inputs are still read). */
function overlaps(x: FloatArray, y: FloatArray): boolean {
  return x.buffer === y.buffer && x.byteOffset < y.byteOffset + y.byteLength &&
    y.byteOffset < x.byteOffset + x.byteLength;
}

function checkSize(name: string, t: FloatArray, needed: number): void {
  if (t.length < needed) {
    throw new Error(`matmul: ${name} has ${t.length} elements, the shape needs ${needed}`);
  }
}
