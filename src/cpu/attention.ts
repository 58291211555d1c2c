/**
 * Causal grouped-query attention on the host, as Hugging Face transformers' eager attention
 * computes it (`eager_attention_forward` with `repeat_kv`): query head h reads kv head
 * `floor(h / (H / Hkv))`, scores are `q·k / sqrt(D)`, the causal mask leaves `s <= t`, and the
 * softmax subtracts the row max. Right-padded batches need no other mask: a real token never
 * attends to a later pad.
 *
 * Shapes: q, out, dq, dOut (B,T,H,D); k, v, dk, dv (B,T,Hkv,D); probs, dScores (B,H,T,T).
 * Sums accumulate in JS numbers (float64) and are stored in the arrays' own precision, so the
 * same code serves the float32 reference and the float64 finite-difference checks.
 *
 * @module
 */

import type { FloatArray } from "./types.ts";

/** Checks that the query heads split evenly into kv-head groups; returns the group size. */
function groupSize(H: number, Hkv: number): number {
  if (Hkv <= 0 || H % Hkv !== 0) {
    throw new Error(`attention: ${H} query heads do not split into ${Hkv} kv heads`);
  }
  return H / Hkv;
}

/**
 * out (B,T,H,D) = softmax(q k^T / sqrt(D) + causal mask) v, per head; probs (B,H,T,T) keeps the
 * softmax for the backward, with exact zeros above the diagonal (s > t).
 */
export function attentionForward(
  out: FloatArray,
  probs: FloatArray,
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  B: number,
  T: number,
  H: number,
  Hkv: number,
  D: number,
): void {
  const group = groupSize(H, Hkv);
  const scale = 1 / Math.sqrt(D);
  const scores = new Float64Array(T);
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const qRow = ((b * T + t) * H + h) * D;
        const pRow = ((b * H + h) * T + t) * T;
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          const kRow = ((b * T + s) * Hkv + kvh) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qRow + d] * k[kRow + d];
          scores[s] = dot * scale;
          if (scores[s] > max) max = scores[s];
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) {
          scores[s] = Math.exp(scores[s] - max);
          sum += scores[s];
        }
        acc.fill(0);
        for (let s = 0; s <= t; s++) {
          probs[pRow + s] = scores[s] / sum;
          // out reads the stored probabilities, as HF multiplies the (f32) softmax by v.
          const p = probs[pRow + s];
          const vRow = ((b * T + s) * Hkv + kvh) * D;
          for (let d = 0; d < D; d++) acc[d] += p * v[vRow + d];
        }
        for (let s = t + 1; s < T; s++) probs[pRow + s] = 0;
        for (let d = 0; d < D; d++) out[qRow + d] = acc[d];
      }
    }
  }
}

/**
 * Gradients of {@link attentionForward}. dq, dk, dv are overwritten; dScores (B,H,T,T) is scratch
 * and ends holding d(loss)/d(q·k) (the 1/sqrt(D) already folded in), zero above the diagonal.
 *
 *   dProbs[t,s]  = dOut[t] · v[s]
 *   dScores[t,s] = probs[t,s] * (dProbs[t,s] - sum_s' probs[t,s'] dProbs[t,s']) / sqrt(D)
 *   dq[t]        = sum_s dScores[t,s] k[s]
 *   dk[s]        = sum over the group's heads and t >= s of dScores[t,s] q[t]
 *   dv[s]        = sum over the group's heads and t >= s of probs[t,s] dOut[t]
 */
export function attentionBackward(
  dq: FloatArray,
  dk: FloatArray,
  dv: FloatArray,
  dScores: FloatArray,
  dOut: FloatArray,
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  probs: FloatArray,
  B: number,
  T: number,
  H: number,
  Hkv: number,
  D: number,
): void {
  const group = groupSize(H, Hkv);
  const scale = 1 / Math.sqrt(D);
  const dProbs = new Float64Array(T);
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const qRow = ((b * T + t) * H + h) * D;
        const pRow = ((b * H + h) * T + t) * T;
        let rowDot = 0;
        for (let s = 0; s <= t; s++) {
          const vRow = ((b * T + s) * Hkv + kvh) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += dOut[qRow + d] * v[vRow + d];
          dProbs[s] = dot;
          rowDot += probs[pRow + s] * dot;
        }
        acc.fill(0);
        for (let s = 0; s <= t; s++) {
          dScores[pRow + s] = probs[pRow + s] * (dProbs[s] - rowDot) * scale;
          const ds = dScores[pRow + s];
          const kRow = ((b * T + s) * Hkv + kvh) * D;
          for (let d = 0; d < D; d++) acc[d] += ds * k[kRow + d];
        }
        for (let s = t + 1; s < T; s++) dScores[pRow + s] = 0;
        for (let d = 0; d < D; d++) dq[qRow + d] = acc[d];
      }
    }
  }
  // dk, dv: one fixed-order sum per (b, s, kvh, d) over the group's heads, then t, as the GPU does.
  const dkAcc = new Float64Array(D);
  const dvAcc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < T; s++) {
      for (let kvh = 0; kvh < Hkv; kvh++) {
        dkAcc.fill(0);
        dvAcc.fill(0);
        for (let h = kvh * group; h < (kvh + 1) * group; h++) {
          for (let t = s; t < T; t++) {
            const p = (((b * H + h) * T + t) * T) + s;
            const ds = dScores[p];
            const pr = probs[p];
            const qRow = ((b * T + t) * H + h) * D;
            for (let d = 0; d < D; d++) {
              dkAcc[d] += ds * q[qRow + d];
              dvAcc[d] += pr * dOut[qRow + d];
            }
          }
        }
        const kRow = ((b * T + s) * Hkv + kvh) * D;
        for (let d = 0; d < D; d++) {
          dk[kRow + d] = dkAcc[d];
          dv[kRow + d] = dvAcc[d];
        }
      }
    }
  }
}
