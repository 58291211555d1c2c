/**
 * The named arguments of the ops (src/backend/ops.ts) with many operands: each op takes one object, so a call
 * reads `{ dq, dk, dv, ..., B, T, H, Hkv, D }` instead of fourteen positions to keep in order.
 * Shapes are element counts; every tensor is f32 unless it says i32.
 *
 * @module
 */

import type { KtoLossSpec, PreferenceLossSpec } from "./loss_spec.ts";
import type { Tensor } from "./ops.ts";

/** rmsnormForward: out (N,C) = x * rsqrt(mean(x^2) + eps) * w; rstd (N) keeps the rsqrt. */
export interface RmsnormForwardArgs {
  out: Tensor;
  rstd: Tensor;
  x: Tensor;
  w: Tensor;
  N: number;
  C: number;
  eps: number;
}

/** rmsnormBackward: dx (N,C) (+)= d/dx; dw (C) += d/dw, rows summed in order. */
export interface RmsnormBackwardArgs {
  dx: Tensor;
  dw: Tensor;
  dOut: Tensor;
  x: Tensor;
  w: Tensor;
  rstd: Tensor;
  N: number;
  C: number;
  /** Add into dx instead of overwriting it. */
  accumulateDx: boolean;
}

/**
 * rope: rotary embedding in place on x (rows = B*T, H, D), HF rotate-half convention; row r has
 * position r % T; cos, sin are (T, D/2) tables.
 */
export interface RopeArgs {
  x: Tensor;
  cos: Tensor;
  sin: Tensor;
  rows: number;
  T: number;
  H: number;
  D: number;
  /** Rotate by -angle (the backward of the forward). */
  inverse: boolean;
}

/** ropeAt (decode): rope in place on x (rows, H, D), row r at positions[r] (i32); tables (L, D/2). */
export interface RopeAtArgs {
  x: Tensor;
  cos: Tensor;
  sin: Tensor;
  positions: Tensor;
  rows: number;
  H: number;
  D: number;
}

/** Causal grouped-query attention's shape: batch, sequence, query heads, key/value heads, head size. */
export interface AttentionShape {
  B: number;
  T: number;
  H: number;
  Hkv: number;
  D: number;
}

/**
 * attentionForward: q (B,T,H,D), k and v (B,T,Hkv,D), out (B,T,H,D); probs (B,H,T,T) keeps the
 * softmax for the backward; scores scaled by 1/sqrt(D).
 */
export interface AttentionForwardArgs extends AttentionShape {
  out: Tensor;
  probs: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
}

/** attentionBackward: dq, dk, dv are overwritten; dScores (B,H,T,T) is scratch. */
export interface AttentionBackwardArgs extends AttentionShape {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
  dScores: Tensor;
  dOut: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  probs: Tensor;
}

/**
 * preferenceLoss on P pairs. policyLogps, refLogps and tokenCounts (2P, completion tokens as f32)
 * hold chosen sequences 0..P-1 then rejected P..2P-1; refLogps is ignored by reference-free losses.
 */
export interface PreferenceLossArgs {
  spec: PreferenceLossSpec;
  metrics: Tensor;
  seqGrad: Tensor;
  policyLogps: Tensor;
  refLogps: Tensor;
  tokenCounts: Tensor;
  P: number;
  /** seqGrad = scale * d(sum of per-pair losses)/d(policyLogps); metrics get scale-weighted sums. */
  scale: number;
}

/**
 * ktoLoss on B unpaired examples: policyLogps (B), policyKlLogps (B) of the mismatched pairs,
 * refLogps (2B: examples then mismatched pairs), labels (B) 1 (desirable) or 0.
 */
export interface KtoLossArgs {
  spec: KtoLossSpec;
  metrics: Tensor;
  seqGrad: Tensor;
  policyLogps: Tensor;
  policyKlLogps: Tensor;
  refLogps: Tensor;
  labels: Tensor;
  B: number;
  scale: number;
}

/** optimizerStep over a whole arena: params, grads, state1, state2 have n elements. */
export interface OptimizerStepArgs {
  kind: "adamw" | "rmsprop" | "sgd";
  params: Tensor;
  grads: Tensor;
  state1: Tensor;
  state2: Tensor;
  /** The result of sumSquares, used for clipping on the device. */
  gradNormSq: Tensor;
  /** Packed hyperparameters (`packHyper` in src/backend/hyper.ts). */
  hyper: Tensor;
  n: number;
}

/** kvCacheWrite (decode): kCache, vCache (B,L,Hkv,D)[b, positions[b]] = k, v (B,Hkv,D)[b]. */
export interface KvCacheWriteArgs {
  kCache: Tensor;
  vCache: Tensor;
  k: Tensor;
  v: Tensor;
  positions: Tensor;
  B: number;
  L: number;
  Hkv: number;
  D: number;
}

/**
 * decodeAttention: out (B,H,D) = attention of the one query q (B,H,D) of each row over its cache
 * positions 0..positions[b] (GQA, scaled by 1/sqrt(D)); scores (B,H,L) is scratch.
 */
export interface DecodeAttentionArgs {
  out: Tensor;
  scores: Tensor;
  q: Tensor;
  kCache: Tensor;
  vCache: Tensor;
  positions: Tensor;
  B: number;
  L: number;
  H: number;
  Hkv: number;
  D: number;
}
