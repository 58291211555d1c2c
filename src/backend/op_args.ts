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
  /** Output (N, C). */
  out: Tensor;
  /** Kept reciprocal RMS of each row (N), for the backward. */
  rstd: Tensor;
  /** Input (N, C). */
  x: Tensor;
  /** Weight (C). */
  w: Tensor;
  /** Rows. */
  N: number;
  /** Channels. */
  C: number;
  /** Added to the mean square (`rms_norm_eps`). */
  eps: number;
}

/** rmsnormBackward: dx (N,C) (+)= d/dx; dw (C) += d/dw, rows summed in order. */
export interface RmsnormBackwardArgs {
  /** Gradient of the input (N, C). */
  dx: Tensor;
  /** Gradient of the weight (C), added to. */
  dw: Tensor;
  /** Gradient of the output (N, C). */
  dOut: Tensor;
  /** The forward input (N, C). */
  x: Tensor;
  /** Weight (C). */
  w: Tensor;
  /** The forward's reciprocal RMS (N). */
  rstd: Tensor;
  /** Rows. */
  N: number;
  /** Channels. */
  C: number;
  /** Add into dx instead of overwriting it. */
  accumulateDx: boolean;
}

/**
 * rope: rotary embedding in place on x (rows = B*T, H, D), HF rotate-half convention; row r has
 * position r % T; cos, sin are (T, D/2) tables.
 */
export interface RopeArgs {
  /** Queries or keys (rows, H, D), rotated in place. */
  x: Tensor;
  /** Cosine table (T, D/2). */
  cos: Tensor;
  /** Sine table (T, D/2). */
  sin: Tensor;
  /** Rows (B * T). */
  rows: number;
  /** Sequence length: row r is at position r % T. */
  T: number;
  /** Heads. */
  H: number;
  /** Head size. */
  D: number;
  /** Rotate by -angle (the backward of the forward). */
  inverse: boolean;
}

/** ropeAt (decode): rope in place on x (rows, H, D), row r at positions[r] (i32); tables (L, D/2). */
export interface RopeAtArgs {
  /** Queries or keys (rows, H, D), rotated in place. */
  x: Tensor;
  /** Cosine table (L, D/2). */
  cos: Tensor;
  /** Sine table (L, D/2). */
  sin: Tensor;
  /** Position of each row (rows, i32). */
  positions: Tensor;
  /** Rows. */
  rows: number;
  /** Heads. */
  H: number;
  /** Head size. */
  D: number;
}

/** Causal grouped-query attention's shape: batch, sequence, query heads, key/value heads, head size. */
export interface AttentionShape {
  /** Batch rows. */
  B: number;
  /** Sequence length. */
  T: number;
  /** Query heads. */
  H: number;
  /** Key/value heads (H is a multiple). */
  Hkv: number;
  /** Head size. */
  D: number;
}

/**
 * attentionForward: q (B,T,H,D), k and v (B,T,Hkv,D), out (B,T,H,D); stats (B,H,T,2) keeps each
 * query row's score max and exp-sum, from which the backward recomputes the softmax (no (T, T)
 * matrix is held); scores scaled by 1/sqrt(D).
 */
export interface AttentionForwardArgs extends AttentionShape {
  /** Output (B, T, H, D). */
  out: Tensor;
  /** Per query row [score max, sum of exp(score - max)] (B, H, T, 2), kept for the backward. */
  stats: Tensor;
  /** Queries (B, T, H, D). */
  q: Tensor;
  /** Keys (B, T, Hkv, D). */
  k: Tensor;
  /** Values (B, T, Hkv, D). */
  v: Tensor;
}

/** attentionBackward: dq, dk, dv are overwritten; rowDot (B,H,T) is scratch. */
export interface AttentionBackwardArgs extends AttentionShape {
  /** Gradient of the queries (B, T, H, D). */
  dq: Tensor;
  /** Gradient of the keys (B, T, Hkv, D). */
  dk: Tensor;
  /** Gradient of the values (B, T, Hkv, D). */
  dv: Tensor;
  /** Scratch (B, H, T): per query row, sum over s of probs * dProbs. */
  rowDot: Tensor;
  /** Gradient of the output (B, T, H, D). */
  dOut: Tensor;
  /** The forward queries. */
  q: Tensor;
  /** The forward keys. */
  k: Tensor;
  /** The forward values. */
  v: Tensor;
  /** The forward output (B, T, H, D) (the hardware layout's dOut · out). */
  out: Tensor;
  /** The forward's row statistics (B, H, T, 2). */
  stats: Tensor;
}

/**
 * preferenceLoss on P pairs. policyLogps, refLogps, tokenCounts (completion tokens as f32) and
 * winRates (2P each) hold chosen sequences 0..P-1 then rejected P..2P-1; refLogps is ignored by
 * reference-free losses, winRates by every loss but `sppo`.
 */
export interface PreferenceLossArgs {
  /** The resolved loss (type, beta, ...). */
  spec: PreferenceLossSpec;
  /** Metric sums, in the order of `PREFERENCE_METRICS`. */
  metrics: Tensor;
  /** Gradient of the loss with respect to each sequence log-prob (2P). */
  seqGrad: Tensor;
  /** Policy log-probs (2P). */
  policyLogps: Tensor;
  /** Reference log-probs (2P). */
  refLogps: Tensor;
  /** Completion tokens of each sequence (2P, f32). */
  tokenCounts: Tensor;
  /** SPPO's win-rate P̂(y ≻ π_t | x) of each sequence (2P, in [0, 1]); read by `sppo` only. */
  winRates: Tensor;
  /** Pairs. */
  P: number;
  /** seqGrad = scale * d(sum of per-pair losses)/d(policyLogps); metrics get scale-weighted sums. */
  scale: number;
}

/**
 * ktoLoss on B unpaired examples: policyLogps (B), policyKlLogps (B) of the mismatched pairs,
 * refLogps (2B: examples then mismatched pairs), labels (B) 1 (desirable) or 0.
 */
export interface KtoLossArgs {
  /** The resolved KTO loss. */
  spec: KtoLossSpec;
  /** Metric sums, in the order of `KTO_METRICS`. */
  metrics: Tensor;
  /** Gradient of the loss with respect to each policy log-prob (B). */
  seqGrad: Tensor;
  /** Policy log-probs of the examples (B). */
  policyLogps: Tensor;
  /** Policy log-probs of the mismatched pairs (B). */
  policyKlLogps: Tensor;
  /** Reference log-probs (2B): examples, then mismatched pairs. */
  refLogps: Tensor;
  /** 1 for a desirable example, 0 for an undesirable one (B). */
  labels: Tensor;
  /** Examples. */
  B: number;
  /** seqGrad and metrics are scaled by it (1 / examples of the step). */
  scale: number;
}

/** optimizerStep over a whole arena: params, grads, state1, state2 have n elements. */
export interface OptimizerStepArgs {
  /** Which update rule. */
  kind: "adamw" | "rmsprop" | "sgd";
  /** Parameters (n), updated in place. */
  params: Tensor;
  /** Gradients (n). */
  grads: Tensor;
  /** First moment (AdamW) or square average (RMSprop) (n). */
  state1: Tensor;
  /** Second moment (AdamW) (n). */
  state2: Tensor;
  /** The result of sumSquares, used for clipping on the device. */
  gradNormSq: Tensor;
  /** Packed hyperparameters (`packHyper` in src/backend/hyper.ts). */
  hyper: Tensor;
  /** Elements of the arena. */
  n: number;
}

/** kvCacheWrite (decode): kCache, vCache (B,L,Hkv,D)[b, positions[b]] = k, v (B,Hkv,D)[b]. */
export interface KvCacheWriteArgs {
  /** Key cache (B, L, Hkv, D). */
  kCache: Tensor;
  /** Value cache (B, L, Hkv, D). */
  vCache: Tensor;
  /** New keys (B, Hkv, D). */
  k: Tensor;
  /** New values (B, Hkv, D). */
  v: Tensor;
  /** Cache position of each row (B, i32). */
  positions: Tensor;
  /** Rows. */
  B: number;
  /** Cache length. */
  L: number;
  /** Key/value heads. */
  Hkv: number;
  /** Head size. */
  D: number;
}

/**
 * decodeAttention: out (B,H,D) = attention of the one query q (B,H,D) of each row over its cache
 * positions 0..positions[b] (GQA, scaled by 1/sqrt(D)); scores (B,H,L) is scratch.
 */
export interface DecodeAttentionArgs {
  /** Output (B, H, D). */
  out: Tensor;
  /** Scratch (B, H, L). */
  scores: Tensor;
  /** The query of each row (B, H, D). */
  q: Tensor;
  /** Key cache (B, L, Hkv, D). */
  kCache: Tensor;
  /** Value cache (B, L, Hkv, D). */
  vCache: Tensor;
  /** Last cache position of each row (B, i32). */
  positions: Tensor;
  /** Rows. */
  B: number;
  /** Cache length. */
  L: number;
  /** Query heads. */
  H: number;
  /** Key/value heads. */
  Hkv: number;
  /** Head size. */
  D: number;
}

/**
 * dropout: out (n) (+)= keep(i) ? x[i] * scale / (1 - p) : 0 — inverted dropout (torch's
 * `nn.Dropout` in training) fused with a scale. keep(i) is a counter-based hash of (seed[0], salt,
 * i) compared with p·2^32, the same integers on every backend, so a mask is recomputed bit for bit
 * in the backward instead of being stored; p = 0 keeps every element (a plain scale).
 */
export interface DropoutArgs {
  /** Output (n); distinct from `x`. */
  out: Tensor;
  /** Input (n). */
  x: Tensor;
  /** Elements. */
  n: number;
  /** Drop probability in [0, 1). */
  p: number;
  /** Factor applied to the kept elements (before the 1/(1-p)). @default 1 */
  scale?: number;
  /** (1) u32 key of the step (written per micro-batch); unused when p = 0. */
  seed?: Tensor;
  /** u32 that tells the call sites of one step apart (layer, module). @default 0 */
  salt?: number;
  /** out += result instead of out = result. @default false */
  accumulate?: boolean;
}

/** How the fused LM head of {@link Ops.lmHeadForward} is chunked, from {@link Ops.lmHeadPlan}. */
export interface LmHeadPlan {
  /** Vocabulary columns per chunk. */
  vocabChunk: number;
  /** Elements of the scratch tensor the forward and backward share (trainable or frozen). */
  scratch: { trainable: number; frozen: number };
}

/** Arguments of {@link Ops.lmHeadForward}; shapes N rows, C hidden, V vocabulary. */
export interface LmHeadForwardArgs {
  /** (N) log-sum-exp of each row's logits. */
  lse: Tensor;
  /** (N) logits[r, targets[r]] - lse[r], or 0 where targets[r] < 0. */
  tokenLogp: Tensor;
  /** (N, 3) running statistics between chunks. */
  stats: Tensor;
  /** The plan's scratch (frozen size at least). */
  scratch: Tensor;
  /** (N, C) the final norm's output. */
  hidden: Tensor;
  /** (V, C) the head weight (the embedding when tied), f32 or a frozen half. */
  weight: Tensor;
  /** (N) i32 targets. */
  targets: Tensor;
  /** Rows. */
  N: number;
  /** Vocabulary size. */
  V: number;
  /** Hidden size. */
  C: number;
  /** The plan's vocabulary columns per chunk. */
  vocabChunk: number;
}

/** Arguments of {@link Ops.lmHeadBackward}. */
export interface LmHeadBackwardArgs {
  /** (N, C) overwritten with d(loss)/d(hidden). */
  dHidden: Tensor;
  /** (V, C) accumulated with d(loss)/d(weight); absent for a frozen head. */
  dWeight?: Tensor;
  /** The plan's scratch (trainable size). */
  scratch: Tensor;
  /** (N, C) the final norm's output, as in the forward. */
  hidden: Tensor;
  /** (V, C) the head weight, as in the forward. */
  weight: Tensor;
  /** (N) from the forward. */
  lse: Tensor;
  /** (N) i32 targets, as in the forward. */
  targets: Tensor;
  /** (N) d(loss)/d(tokenLogp). */
  rowGrad: Tensor;
  /** Rows. */
  N: number;
  /** Vocabulary size. */
  V: number;
  /** Hidden size. */
  C: number;
  /** The plan's vocabulary columns per chunk. */
  vocabChunk: number;
}
