/**
 * Causal grouped-query attention on the host, as Hugging Face transformers' eager attention
 * computes it (`eager_attention_forward` with `repeat_kv`): query head h reads kv head
 * `floor(h / (H / Hkv))`, scores are `q·k / sqrt(D)`, the causal mask leaves `s <= t`, and the
 * softmax subtracts the row max. Right-padded batches need no other mask: a real token never
 * attends to a later pad.
 *
 * No (T, T) matrix is kept: the forward saves per query row its score max and the sum of
 * `exp(score - max)` (stats), and the backward recomputes each probability from them, as the
 * WebGPU kernels do.
 *
 * Shapes: q, out, dq, dOut (B,T,H,D); k, v, dk, dv (B,T,Hkv,D); stats (B,H,T,2) holds
 * [max, sum] per row; rowDot (B,H,T). Sums accumulate in JS numbers (float64) and are stored in
 * the arrays' own precision, so the same code serves the float32 reference and the float64
 * finite-difference checks.
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

/** Scores and probabilities of one (b, h) from q, k and the saved stats. */
function heads(
  q: FloatArray,
  k: FloatArray,
  stats: FloatArray,
  T: number,
  H: number,
  Hkv: number,
  D: number,
) {
  const group = groupSize(H, Hkv);
  const scale = 1 / Math.sqrt(D);
  // Rounds to the arrays' precision, as the probabilities were stored before they were dropped.
  const cell = new (q.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(1);
  const round = (x: number) => (cell[0] = x, cell[0]);
  const score = (b: number, h: number, t: number, s: number) => {
    const qRow = ((b * T + t) * H + h) * D;
    const kRow = ((b * T + s) * Hkv + Math.floor(h / group)) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qRow + d] * k[kRow + d];
    return dot * scale;
  };
  const prob = (b: number, h: number, t: number, s: number) => {
    const row = ((b * H + h) * T + t) * 2;
    return round(Math.exp(score(b, h, t, s) - stats[row]) / stats[row + 1]);
  };
  return { group, scale, score, prob };
}

/**
 * out (B,T,H,D) = softmax(q k^T / sqrt(D) + causal mask) v, per head; stats (B,H,T,2) keeps
 * each row's score max and exp-sum for the backward.
 */
export function attentionForward(
  out: FloatArray,
  stats: FloatArray,
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  B: number,
  T: number,
  H: number,
  Hkv: number,
  D: number,
): void {
  const { group, score, prob } = heads(q, k, stats, T, H, Hkv, D);
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const qRow = ((b * T + t) * H + h) * D;
        const row = ((b * H + h) * T + t) * 2;
        let max = -Infinity;
        for (let s = 0; s <= t; s++) max = Math.max(max, score(b, h, t, s));
        stats[row] = max;
        let sum = 0;
        for (let s = 0; s <= t; s++) sum += Math.exp(score(b, h, t, s) - stats[row]);
        stats[row + 1] = sum;
        acc.fill(0);
        for (let s = 0; s <= t; s++) {
          // out reads the probabilities in the arrays' precision, as HF multiplies the (f32)
          // softmax by v.
          const p = prob(b, h, t, s);
          const vRow = ((b * T + s) * Hkv + kvh) * D;
          for (let d = 0; d < D; d++) acc[d] += p * v[vRow + d];
        }
        for (let d = 0; d < D; d++) out[qRow + d] = acc[d];
      }
    }
  }
}

/**
 * Gradients of {@link attentionForward}. dq, dk, dv are overwritten; rowDot (B,H,T) is scratch
 * and ends holding `sum_s probs[t,s] dProbs[t,s]` per row. Probabilities are recomputed from q,
 * k and stats.
 *
 *   dProbs[t,s]  = dOut[t] · v[s]
 *   dScores[t,s] = probs[t,s] * (dProbs[t,s] - rowDot[t]) / sqrt(D)
 *   dq[t]        = sum_s dScores[t,s] k[s]
 *   dk[s]        = sum over the group's heads and t >= s of dScores[t,s] q[t]
 *   dv[s]        = sum over the group's heads and t >= s of probs[t,s] dOut[t]
 */
export function attentionBackward(
  dq: FloatArray,
  dk: FloatArray,
  dv: FloatArray,
  rowDot: FloatArray,
  dOut: FloatArray,
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  stats: FloatArray,
  B: number,
  T: number,
  H: number,
  Hkv: number,
  D: number,
): void {
  const { group, scale, prob } = heads(q, k, stats, T, H, Hkv, D);
  const dProb = (b: number, h: number, t: number, s: number) => {
    const oRow = ((b * T + t) * H + h) * D;
    const vRow = ((b * T + s) * Hkv + Math.floor(h / group)) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += dOut[oRow + d] * v[vRow + d];
    return dot;
  };
  // dScores in the arrays' precision, as it was stored before the (T, T) buffer was dropped.
  const cell = new (q.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(1);
  const dScore = (b: number, h: number, t: number, s: number) => (
    cell[0] = prob(b, h, t, s) * (dProb(b, h, t, s) - rowDot[(b * H + h) * T + t]) * scale, cell[0]
  );
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const qRow = ((b * T + t) * H + h) * D;
        let dot = 0;
        for (let s = 0; s <= t; s++) dot += prob(b, h, t, s) * dProb(b, h, t, s);
        rowDot[(b * H + h) * T + t] = dot;
        acc.fill(0);
        for (let s = 0; s <= t; s++) {
          const ds = dScore(b, h, t, s);
          const kRow = ((b * T + s) * Hkv + kvh) * D;
          for (let d = 0; d < D; d++) acc[d] += ds * k[kRow + d];
        }
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
            const ds = dScore(b, h, t, s);
            const pr = prob(b, h, t, s);
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
