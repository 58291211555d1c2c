/**
 * Sequence-level KL(policy ‖ reference) along the policy's own samples, the x-axis of the DPO
 * paper's reward–KL frontier (Rafailov et al. 2023, §6.1, Fig. 2 left).
 *
 * For a completion y = (y_1..y_n) sampled from π(·|x), the estimate is
 *   KL(y) = Σ_{t=1..n} KL( π(·|x, y_<t) ‖ ref(·|x, y_<t) ),
 * the full-vocabulary KL of the two next-token distributions at every completion position. Its
 * expectation over y ~ π is exactly the KL of the two sequence distributions (the chain rule of
 * KL), and it has much less variance than the one-sample estimate log π(y) - log ref(y), which is
 * also returned.
 *
 * On the device: both models run their forward on the same (prompt + completion) batch, with
 * targets marking the completion positions; then, per chunk of rows, each model's final-normed
 * hidden states (acts.lnf) go through its own LM head into a chunk buffer of this module, the
 * `klRows` op reduces each pair of rows to its KL (fixed-order reduction, masked rows 0), and
 * `sequenceSum` adds each sequence's rows; the same kernel against zero logits gives the policy's
 * entropy (./diversity.ts). One submit and four small readbacks per batch.
 *
 * @module
 */

import type { Backend, Tensor } from "../backend/mod.ts";
import { logitsChunkRows } from "../model/activations.ts";
import type { LlamaModel } from "../model/llama.ts";
import { entropyFromUniformKl } from "./diversity.ts";

/** A prompt and a completion of it, as token ids. */
export interface CompletionSequence {
  /** Ids of the prompt. */
  promptIds: readonly number[];
  /** Ids of the completion. */
  completionIds: readonly number[];
}

/** Per-sequence results of {@link SequenceKl.compute}, in input order. */
export interface SequenceKlResult {
  /** Σ over completion positions of the full-vocabulary KL(π ‖ ref). */
  kl: Float64Array;
  /** log π(y|x) of each completion (minus `referenceLogps`: the one-sample estimate). */
  policyLogps: Float64Array;
  /** log ref(y|x) of each completion. */
  referenceLogps: Float64Array;
  /** Σ over completion positions of the policy's next-token entropy −Σ p log p (./diversity.ts). */
  entropy: Float64Array;
}

/** Capacity of a {@link SequenceKl}. */
export interface SequenceKlOptions {
  /** Sequences per forward. @default the smaller of the two models' maxBatch */
  batchSize?: number;
  /** Logit elements held at once per model (chunks of rows beyond it). @default 4194304 */
  logitsBudget?: number;
}

/**
 * The KL estimator of one (policy, reference) pair: chunk buffers for both models' logits and the
 * per-row and per-sequence KL, allocated once for the models' batch capacity. The two models must
 * share the vocabulary; they may differ in size. `reference` may be `policy` itself (then KL is
 * exactly 0: one forward, and the same logits twice).
 *
 * @example
 * ```ts
 * const estimator = new SequenceKl(policy, reference);
 * const { kl } = await estimator.compute([{ promptIds: [1, 7], completionIds: [9, 4, 2] }]);
 * ```
 */
export class SequenceKl {
  readonly batchSize: number;
  readonly maxSeqLen: number;
  readonly #backend: Backend;
  readonly #chunkRows: number;
  readonly #policyLogits: Tensor;
  readonly #referenceLogits: Tensor;
  readonly #rowKl: Tensor;
  readonly #seqKl: Tensor;
  readonly #rowUniformKl: Tensor;
  readonly #seqUniformKl: Tensor;

  constructor(
    readonly policy: LlamaModel,
    readonly reference: LlamaModel,
    { batchSize, logitsBudget = 4 * 1024 * 1024 }: SequenceKlOptions = {},
  ) {
    if (policy.backend !== reference.backend) {
      throw new Error("SequenceKl: the policy and the reference must live on the same backend");
    }
    const V = policy.config.vocabSize;
    if (reference.config.vocabSize !== V) {
      throw new Error(
        `SequenceKl: the policy has a vocabulary of ${V} tokens and the reference ` +
          `${reference.config.vocabSize}; KL needs the same tokenizer for both`,
      );
    }
    this.#backend = policy.backend;
    const capacity = Math.min(policy.options.maxBatch, reference.options.maxBatch);
    this.batchSize = Math.max(1, Math.min(batchSize ?? capacity, capacity));
    this.maxSeqLen = Math.min(policy.options.maxSeqLen, reference.options.maxSeqLen);
    const N = this.batchSize * this.maxSeqLen;
    this.#chunkRows = logitsChunkRows(N, V, logitsBudget);
    const f = (n: number) => this.#backend.alloc("activations", n);
    this.#policyLogits = f(this.#chunkRows * V);
    this.#referenceLogits = f(this.#chunkRows * V);
    this.#rowKl = f(N);
    this.#seqKl = f(this.batchSize);
    this.#rowUniformKl = f(N);
    this.#seqUniformKl = f(this.batchSize);
  }

  /**
   * Sequence KLs of `sequences` (each prompt at least one token, each whole sequence at most
   * {@link maxSeqLen} tokens), in batches of {@link batchSize}.
   */
  async compute(
    sequences: readonly CompletionSequence[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<SequenceKlResult> {
    const n = sequences.length;
    const out: SequenceKlResult = {
      kl: new Float64Array(n),
      policyLogps: new Float64Array(n),
      referenceLogps: new Float64Array(n),
      entropy: new Float64Array(n),
    };
    sequences.forEach((s, i) => this.#validate(s, i));
    for (let start = 0; start < n; start += this.batchSize) {
      const part = sequences.slice(start, start + this.batchSize);
      const [kl, policyLogps, referenceLogps, uniformKl] = await this.#batch(part);
      const V = this.policy.config.vocabSize;
      part.forEach((s, i) => {
        out.entropy[start + i] = entropyFromUniformKl(uniformKl[i], s.completionIds.length, V);
      });
      out.kl.set(kl, start);
      out.policyLogps.set(policyLogps, start);
      out.referenceLogps.set(referenceLogps, start);
      onProgress?.(start + part.length, n);
    }
    return out;
  }

  #validate(s: CompletionSequence, i: number): void {
    const V = this.policy.config.vocabSize;
    const T = s.promptIds.length + s.completionIds.length;
    if (s.promptIds.length === 0) throw new Error(`sequence ${i}: the prompt is empty`);
    if (T > this.maxSeqLen) {
      throw new Error(
        `sequence ${i} has ${T} tokens, more than the models' maxSeqLen ${this.maxSeqLen}: ` +
          "load the models with a larger maxSeqLen",
      );
    }
    for (const id of [...s.promptIds, ...s.completionIds]) {
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new Error(`sequence ${i} holds token id ${id} outside [0, ${V})`);
      }
    }
  }

  /** One batch: forward both models, KL per chunk of rows, per-sequence sums, one readback. */
  async #batch(part: readonly CompletionSequence[]): Promise<Float64Array[]> {
    const { policy, reference } = this;
    const backend = this.#backend, ops = backend.ops;
    const B = part.length;
    const T = Math.max(...part.map((s) => s.promptIds.length + s.completionIds.length));
    // Row t predicts token t+1; it counts when token t+1 is a completion token.
    const inputIds = new Int32Array(B * T);
    const targets = new Int32Array(B * T).fill(-1);
    part.forEach((s, b) => {
      const seq = [...s.promptIds, ...s.completionIds];
      inputIds.set(seq, b * T);
      for (let t = s.promptIds.length - 1; t < seq.length - 1; t++) targets[b * T + t] = seq[t + 1];
    });
    // The KL reads logits, not the loss: the batch's token counts are unused.
    const batch = { inputIds, targets, rows: B, T, tokenCounts: new Int32Array(B) };
    policy.setBatch(batch);
    policy.forward();
    if (reference !== policy) {
      reference.setBatch(batch);
      reference.forward();
    }
    const N = B * T, V = policy.config.vocabSize;
    const view = (t: Tensor, offset: number, size: number) =>
      offset === 0 && size === t.size ? t : backend.view(t, offset, size);
    for (let r0 = 0; r0 < N; r0 += this.#chunkRows) {
      const R = Math.min(this.#chunkRows, N - r0);
      const pLogits = view(this.#policyLogits, 0, R * V);
      const qLogits = view(this.#referenceLogits, 0, R * V);
      for (const [model, logits] of [[policy, pLogits], [reference, qLogits]] as const) {
        const C = model.config.hiddenSize;
        const lnf = view(model.acts.lnf, r0 * C, R * C);
        ops.matmul(logits, lnf, model.params.get(model.lmHead), R, V, C, { transB: true });
      }
      const rowTargets = view(policy.acts.targets, r0, R);
      ops.klRows(view(this.#rowKl, r0, R), pLogits, qLogits, rowTargets, R, V);
      // The policy's entropy: KL against zero logits (uniform), H = log V − KL(p ‖ u).
      ops.fill(qLogits, 0, R * V);
      ops.klRows(view(this.#rowUniformKl, r0, R), pLogits, qLogits, rowTargets, R, V);
    }
    ops.sequenceSum(this.#seqKl, this.#rowKl, B, T);
    ops.sequenceSum(this.#seqUniformKl, this.#rowUniformKl, B, T);
    backend.submit();
    const kl = await backend.read(this.#seqKl);
    const policyLogps = await backend.read(policy.acts.seqLogps);
    const referenceLogps = await backend.read(reference.acts.seqLogps);
    const uniformKl = await backend.read(this.#seqUniformKl);
    return [kl, policyLogps, referenceLogps, uniformKl].map((x) =>
      Float64Array.from(x.subarray(0, B))
    );
  }
}

const estimators = new WeakMap<LlamaModel, WeakMap<LlamaModel, SequenceKl>>();

/**
 * Sequence KLs with one {@link SequenceKl} per (policy, reference) pair, kept for the models'
 * lifetime (so evaluating every k training steps allocates nothing after the first call).
 */
export async function sequenceKl(
  policy: LlamaModel,
  reference: LlamaModel,
  sequences: readonly CompletionSequence[],
  options: SequenceKlOptions & { onProgress?: (done: number, total: number) => void } = {},
): Promise<SequenceKlResult> {
  let byReference = estimators.get(policy);
  if (!byReference) estimators.set(policy, byReference = new WeakMap());
  let estimator = byReference.get(reference);
  const capacity = Math.min(policy.options.maxBatch, reference.options.maxBatch);
  const wanted = Math.min(options.batchSize ?? capacity, capacity);
  if (!estimator || estimator.batchSize < wanted) {
    estimator = new SequenceKl(policy, reference, options);
    byReference.set(reference, estimator);
  }
  return await estimator.compute(sequences, options.onProgress);
}
