/**
 * Row-wise full-vocabulary KL divergence of two chunks of logits on the host, the reference of
 * the WGSL kernel in src/gpu/kernels/kl.ts. It is the inner quantity of the sequence-level
 * KL(policy ‖ reference) the DPO paper plots against reward (Rafailov et al. 2023, Fig. 2):
 * the KL of the two next-token distributions at one position of a sampled completion.
 *
 * Shapes: policyLogits, referenceLogits (R,V); targets (i32), kl (R). A target < 0 marks a row
 * that is not a completion position (prompt, last position, padding): its KL is 0.
 *
 * @module
 */

import type { FloatArray } from "./types.ts";

/** log(sum_v exp(row[v])) of `row` (V elements from `base`), max-subtracted, in float64. */
function logSumExp(row: FloatArray, base: number, V: number): number {
  let max = -Infinity;
  for (let c = 0; c < V; c++) if (row[base + c] > max) max = row[base + c];
  let sum = 0;
  for (let c = 0; c < V; c++) sum += Math.exp(row[base + c] - max);
  return max + Math.log(sum);
}

/**
 * kl[r] = sum_v p_v (log p_v - log q_v) with p = softmax(policyLogits[r]) and
 * q = softmax(referenceLogits[r]), or 0 where targets[r] < 0. Accumulates in float64; identical
 * rows give exactly 0 (every term is then `0 * p_v`).
 */
export function klRows(
  kl: FloatArray,
  policyLogits: FloatArray,
  referenceLogits: FloatArray,
  targets: Int32Array,
  R: number,
  V: number,
): void {
  for (let r = 0; r < R; r++) {
    if (targets[r] < 0) {
      kl[r] = 0;
      continue;
    }
    const base = r * V;
    const lseP = logSumExp(policyLogits, base, V);
    const lseQ = logSumExp(referenceLogits, base, V);
    let sum = 0;
    for (let c = 0; c < V; c++) {
      const logP = policyLogits[base + c] - lseP;
      const logQ = referenceLogits[base + c] - lseQ;
      sum += Math.exp(logP) * (logP - logQ);
    }
    kl[r] = sum;
  }
}
