/**
 * Activation memory of the Llama forward pass, kept for the backward (llm.c style: one tensor per
 * saved quantity per layer, allocated once for the largest batch), and the scratch tensors of the
 * backward, shared by all layers.
 *
 * @module
 */

import type { Backend, LmHeadPlan, Tensor } from "../backend/mod.ts";
import type { ModelConfig } from "./config.ts";

/** Logit elements the unfused LM head holds at once unless a model says otherwise (16 MiB). */
export const DEFAULT_LOGITS_BUDGET = 4 * 1024 * 1024;

/** Tensors one layer saves in the forward. N = B*T rows. */
export interface LayerActivations {
  /** Residual stream entering the layer (N,C). */
  input: Tensor;
  /** input_layernorm output (N,C). */
  ln1: Tensor;
  /** 1/rms of each row of ln1 (N). */
  rstd1: Tensor;
  /** Rotated queries (N,H*D). */
  q: Tensor;
  /** Rotated keys (N, Hkv*D). */
  k: Tensor;
  /** Values (N, Hkv*D). */
  v: Tensor;
  /** Per attention row, the score max and exp-sum (B,H,T,2): the softmax is recomputed. */
  stats: Tensor;
  /** Attention output before o_proj (N,H*D). */
  attn: Tensor;
  /** Residual after attention (N,C). */
  mid: Tensor;
  /** post_attention_layernorm output (N,C). */
  ln2: Tensor;
  /** 1/rms of each row of ln2 (N). */
  rstd2: Tensor;
  /** MLP gate projection (N,F). */
  gate: Tensor;
  /** MLP up projection (N, F). */
  up: Tensor;
  /** silu(gate) * up (N, F). */
  act: Tensor;
}

/** Everything the forward and the backward need besides the parameters. */
export interface Activations {
  /** The tensors each layer saves, in layer order. */
  layers: LayerActivations[];
  /** Residual stream after the last layer (N,C). */
  final: Tensor;
  /** model.norm output (N,C). */
  lnf: Tensor;
  /** 1/rms of each row of lnf (N). */
  rstdf: Tensor;
  /**
   * Logits of one chunk of rows (R,V), holding d(logits) in the backward; with the fused head
   * (`vocabChunk` > 0) the fused head's scratch instead, (N, vocabChunk) at most.
   */
  logits: Tensor;
  /** The fused head's running per-row statistics (N,3); absent when unfused. */
  headStats?: Tensor;
  /** Vocabulary columns per chunk of the fused LM head, or 0: the unfused head runs. */
  vocabChunk: number;
  /** Per-row logsumexp (N). */
  lse: Tensor;
  /** Per-row target log-prob (N). */
  tokenLogp: Tensor;
  /** Per-row gradient (N). */
  rowGrad: Tensor;
  /** Per-sequence completion log-prob sums (B). */
  seqLogps: Tensor;
  /** Gradients of the sequence log-probs (B). */
  seqGrad: Tensor;
  /** Input token ids (N). */
  ids: Tensor;
  /** Target id of each row (N, -1 = not counted). */
  targets: Tensor;
  /** Rows sorted by token id, for the embedding backward (N). */
  order: Tensor;
  /** Start of each token id's rows in `order` (V+1). */
  offsets: Tensor;
  /**
   * Backward scratch (zero-sized for a model created with `trainable: false`): the residual
   * stream's gradient (N, C).
   */
  dRes: Tensor;
  /** Gradient of a norm output (N, C). */
  dLn: Tensor;
  /** Gradient of the attention output (N, H*D). */
  dAttn: Tensor;
  /** Gradient of the queries (N, H*D). */
  dq: Tensor;
  /** Gradient of the keys (N, Hkv*D). */
  dk: Tensor;
  /** Gradient of the values (N, Hkv*D). */
  dv: Tensor;
  /** Attention backward scratch: per row, probs · dProbs (B, H, T). */
  rowDot: Tensor;
  /** Gradient of silu(gate) * up (N, F). */
  dAct: Tensor;
  /** Gradient of the gate projection (N, F). */
  dGate: Tensor;
  /** Gradient of the up projection (N, F). */
  dUp: Tensor;
  /** Rows per LM-head chunk. */
  chunkRows: number;
  /**
   * The layers share one set of tensors besides their inputs, and the backward recomputes each
   * layer's forward before its gradients (gradient checkpointing).
   */
  checkpointing: boolean;
}

/**
 * Rows of logits held at once: all of them when `N*V` fits in `logitsBudget` elements, else a
 * multiple of 64 rows (so chunk views stay binding-aligned).
 */
export function logitsChunkRows(N: number, V: number, logitsBudget: number): number {
  if (N * V <= logitsBudget) return N;
  return Math.max(64, Math.floor(logitsBudget / V / 64) * 64);
}

/**
 * Allocates activations for batches of up to `B` rows of `T` tokens: every layer's for a
 * trainable model; with `checkpointing`, every layer's input and one layer's worth of the rest,
 * which the backward recomputes; for a frozen model one layer's worth and two inputs.
 */
export function allocActivations(
  backend: Backend,
  config: ModelConfig,
  B: number,
  T: number,
  logitsBudget: number,
  { trainable = true, checkpointing = false, lmHead }: {
    trainable?: boolean;
    checkpointing?: boolean;
    /** The backend's plan of the fused LM head; without one the unfused head runs. */
    lmHead?: LmHeadPlan;
  } = {},
): Activations {
  const { hiddenSize: C, intermediateSize: F, numHeads: H, numKvHeads: Hkv, headDim: D } = config;
  const V = config.vocabSize;
  const N = B * T;
  const a = (size: number) => backend.alloc("activations", size);
  const layers: LayerActivations[] = [];
  const layer = (input: Tensor): LayerActivations => ({
    input,
    ln1: a(N * C),
    rstd1: a(N),
    q: a(N * H * D),
    k: a(N * Hkv * D),
    v: a(N * Hkv * D),
    stats: a(B * H * T * 2),
    attn: a(N * H * D),
    mid: a(N * C),
    ln2: a(N * C),
    rstd2: a(N),
    gate: a(N * F),
    up: a(N * F),
    act: a(N * F),
  });
  if (trainable && checkpointing) {
    const shared = layer(a(N * C));
    for (let l = 0; l < config.numLayers; l++) {
      layers.push({ ...shared, input: l === 0 ? shared.input : a(N * C) });
    }
  } else if (trainable) {
    for (let l = 0; l < config.numLayers; l++) layers.push(layer(a(N * C)));
  } else {
    // A frozen model keeps nothing for a backward: the layers share one set of buffers, and the
    // residual stream alternates between two (a layer reads its input before writing the next).
    const shared = layer(a(N * C));
    const other = a(N * C);
    for (let l = 0; l < config.numLayers; l++) {
      layers.push({ ...shared, input: l % 2 === 0 ? shared.input : other });
    }
  }
  const chunkRows = lmHead ? N : logitsChunkRows(N, V, logitsBudget);
  const i32 = (size: number) => backend.alloc("inputs", size, "i32");
  const d = (size: number) => a(trainable ? size : 1);
  return {
    layers,
    final: a(N * C),
    lnf: a(N * C),
    rstdf: a(N),
    logits: a(
      lmHead ? (trainable ? lmHead.scratch.trainable : lmHead.scratch.frozen) : chunkRows * V,
    ),
    ...(lmHead ? { headStats: a(N * 3) } : {}),
    vocabChunk: lmHead?.vocabChunk ?? 0,
    lse: a(N),
    tokenLogp: a(N),
    rowGrad: d(N),
    seqLogps: a(B),
    seqGrad: d(B),
    ids: i32(N),
    targets: i32(N),
    order: i32(trainable ? N : 1),
    offsets: i32(trainable ? V + 1 : 1),
    dRes: d(N * C),
    dLn: d(N * C),
    dAttn: d(N * H * D),
    dq: d(N * H * D),
    dk: d(N * Hkv * D),
    dv: d(N * Hkv * D),
    rowDot: d(B * H * T),
    dAct: d(N * F),
    dGate: d(N * F),
    dUp: d(N * F),
    chunkRows,
    checkpointing: trainable && checkpointing,
  };
}
