/**
 * The log-prob head on the host: per-row log-sum-exp and target log-probabilities of a chunk of
 * logits, their gradient, and the per-sequence sums that turn token log-probs into completion
 * log-probs (DESIGN.md: sums over completion tokens of `log_softmax(logits[t-1])[token t]`).
 *
 * Shapes: logits (R,V); lse, tokenLogp, targets (i32), rowGrad (R); seqLogps, seqGrad (S);
 * per-token rows of a sequence batch (S,T). A target < 0 marks a prompt or padding row, which
 * never counts. Sums accumulate in JS numbers (float64) and are stored in the arrays' precision.
 *
 * @module
 */

import type { FloatArray } from "./types.ts";

/**
 * lse[r] = log(sum_v exp(logits[r,v])) with the row max subtracted first; tokenLogp[r] =
 * logits[r, targets[r]] - lse[r], or 0 where targets[r] < 0.
 */
export function logitsForward(
  lse: FloatArray,
  tokenLogp: FloatArray,
  logits: FloatArray,
  targets: Int32Array,
  R: number,
  V: number,
): void {
  for (let r = 0; r < R; r++) {
    const row = r * V;
    let max = -Infinity;
    for (let c = 0; c < V; c++) if (logits[row + c] > max) max = logits[row + c];
    let sum = 0;
    for (let c = 0; c < V; c++) sum += Math.exp(logits[row + c] - max);
    lse[r] = max + Math.log(sum);
    const target = targets[r];
    if (target >= V) {
      throw new Error(`logitsForward: target ${target} of row ${r} is not below V = ${V}`);
    }
    tokenLogp[r] = target >= 0 ? logits[row + target] - lse[r] : 0;
  }
}

/**
 * In place: logits[r,v] becomes rowGrad[r] * (onehot(targets[r])[v] - softmax(logits[r])[v]),
 * the gradient of a loss whose gradient with respect to tokenLogp[r] is rowGrad[r]. Rows with
 * targets[r] < 0 become 0.
 */
export function logitsBackward(
  logits: FloatArray,
  lse: FloatArray,
  targets: Int32Array,
  rowGrad: FloatArray,
  R: number,
  V: number,
): void {
  for (let r = 0; r < R; r++) {
    const row = r * V;
    const target = targets[r];
    if (target < 0) {
      logits.fill(0, row, row + V);
      continue;
    }
    const g = rowGrad[r];
    const rowLse = lse[r];
    for (let c = 0; c < V; c++) {
      const softmax = Math.exp(logits[row + c] - rowLse);
      logits[row + c] = g * ((c === target ? 1 : 0) - softmax);
    }
  }
}

/** seqLogps[s] = sum over t = 0..T-1, in order, of tokenLogp[s*T + t]. */
export function sequenceSum(
  seqLogps: FloatArray,
  tokenLogp: FloatArray,
  S: number,
  T: number,
): void {
  for (let s = 0; s < S; s++) {
    let sum = 0;
    for (let t = 0; t < T; t++) sum += tokenLogp[s * T + t];
    seqLogps[s] = sum;
  }
}

/** rowGrad[s*T + t] = seqGrad[s]: the backward of {@link sequenceSum}. */
export function broadcastSequence(
  rowGrad: FloatArray,
  seqGrad: FloatArray,
  S: number,
  T: number,
): void {
  for (let s = 0; s < S; s++) rowGrad.fill(seqGrad[s], s * T, (s + 1) * T);
}
