/**
 * The options and the interfaces of a `LlamaModel`: how it is allocated, what one forward
 * computes, the scorer view that scoring and a live reference use, and what an optimizer updates.
 *
 * @module
 */

import type { TokenBatch } from "../data/collate.ts";
import type { Backend } from "../backend/mod.ts";
import type { Activations } from "./activations.ts";
import type { LoraOptions } from "./lora.ts";
import type { AdapterChoice } from "./lora_adapters.ts";
import type { ParamArena, ParamLayout } from "./params.ts";

/** Options of `LlamaModel`. */
export interface LlamaModelOptions {
  /** Largest number of sequences per forward. */
  maxBatch: number;
  /** Largest sequence length. */
  maxSeqLen: number;
  /**
   * Logit elements held at once by the fused LM head + log-softmax + gather; larger batches are
   * processed in chunks of rows and the chunk's logits are recomputed in the backward.
   * @default 4194304 (16 MiB of f32)
   */
  logitsBudget?: number;
  /**
   * Keep only each layer's input in the forward and recompute the layer's other activations in
   * the backward (TRL's `gradient_checkpointing`): activation memory of one layer instead of all,
   * for one more layer forward per layer in the backward. The recomputation repeats the forward's
   * dispatches on the same inputs, so gradients are bit-identical to a run without it.
   * @default false
   */
  gradientCheckpointing?: boolean;
  /**
   * Allocate gradients and backward scratch. A frozen model (a live reference, an evaluator)
   * passes false and holds only its weights and forward activations.
   * @default true
   */
  trainable?: boolean;
  /**
   * LoRA adapters on a frozen base: only the adapters get gradients (and optimizer state); the
   * base weights hold no gradient arena. Absent: full fine-tuning.
   */
  lora?: LoraOptions;
  /**
   * The precision the frozen weights are held in (a model with `trainable: false`, or the base
   * under `lora`): `bf16` or `f16` keep the checkpoint's 2 bytes per element on the device and
   * widen them to f32 inside the kernels (norms and biases are widened up front); the results
   * equal those of the f32-widened model. Ignored for a fully trained model. @default "f32"
   */
  frozenDtype?: "f32" | "bf16" | "f16";
}

/** What one forward computes (and its backward differentiates). */
export interface ForwardOptions {
  /** Which LoRA weights are added (ignored without adapters). @default "policy" */
  adapters?: AdapterChoice;
  /** Training: the LoRA dropout's key for this micro-batch; absent = no dropout (eval). */
  dropoutSeed?: number;
}

/**
 * What scoring and a live reference need of a model: set a batch, run a forward, read
 * `acts.seqLogps`. A `LlamaModel` is one; `LlamaModel.withAdapters` gives another
 * view of the same weights (e.g. the base with its adapters switched off).
 */
export interface SequenceScorer {
  /** The backend the weights live on. */
  readonly backend: Backend;
  /** The activations; `acts.seqLogps` holds the last forward's per-sequence log-probs. */
  readonly acts: Activations;
  /** The allocation (largest batch and sequence length). */
  readonly options: LlamaModelOptions;
  /** Uploads a batch. */
  setBatch(batch: TokenBatch): void;
  /** Records the forward (no dropout). */
  forward(): void;
}

/** The parameters an optimizer updates: the whole model, or only its LoRA adapters. */
export interface TrainableParams {
  /** Their arena layout. */
  layout: ParamLayout;
  /** The weights. */
  params: ParamArena;
  /** Their gradients, laid out alike. */
  grads: ParamArena;
}
