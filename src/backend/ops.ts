/**
 * The one small interface that the WebGPU and the CPU backends implement. The model, the losses
 * and the optimizers are written once against it (DESIGN.md: "one backend = a small set of classes
 * behind one interface").
 *
 * Conventions shared by every op:
 * - Tensors are flat, row-major, preallocated by the caller; an op writes into its `out` tensors
 *   and never allocates. Shapes are given as plain numbers and documented per op.
 * - Weights use Hugging Face's `[out, in]` layout.
 * - `accumulate: true` means `out += result`, otherwise `out = result`.
 * - Every reduction runs in a fixed order (no float atomics), so results are bit-reproducible.
 * - On WebGPU an op records a dispatch; nothing runs until {@link Backend.submit}. On the CPU an
 *   op runs at once.
 *
 * @module
 */

import type {
  AttentionBackwardArgs,
  AttentionForwardArgs,
  DecodeAttentionArgs,
  DropoutArgs,
  KtoLossArgs,
  KvCacheWriteArgs,
  LmHeadBackwardArgs,
  LmHeadForwardArgs,
  LmHeadPlan,
  OptimizerStepArgs,
  PreferenceLossArgs,
  RmsnormBackwardArgs,
  RmsnormForwardArgs,
  RopeArgs,
  RopeAtArgs,
} from "./op_args.ts";
import type { OptimizerHyper } from "./hyper.ts";

/**
 * Element type of a tensor. Token ids, targets and index lists are `i32`. `bf16` and `f16` are
 * frozen weights held in their checkpoint's precision (2 bytes per element on the device, widened
 * to f32 inside the kernels that read them; a backend may widen them up front instead). Host data
 * written into them must be exactly representable; reads return it widened to f32.
 */
export type DType = "f32" | "i32" | "bf16" | "f16";

/** Which arena a tensor lives in; device bytes are reported by role. */
export type Role = "parameters" | "gradients" | "optimizer" | "activations" | "inputs";

/** An opaque handle to a flat tensor owned by a backend. */
export interface Tensor {
  /** Number of elements. */
  readonly size: number;
  /** Element type. */
  readonly dtype: DType;
  /** Arena the tensor was allocated from. */
  readonly role: Role;
}

/** Options of {@link Ops.matmul}. */
export interface MatmulOptions {
  /** `a` is stored transposed, as `(k, m)`. @default false */
  transA?: boolean;
  /** `b` is stored transposed, as `(n, k)` (a weight in HF `[out, in]` layout). @default false */
  transB?: boolean;
  /** `out += a @ b` instead of `out = a @ b`. @default false */
  accumulate?: boolean;
  /** Optional bias `(n)` added to every row of the result. */
  bias?: Tensor;
}

/** The ops, each the forward or the backward of one piece of the Llama family. */
export interface Ops {
  /** out (m,n) = a (m,k | k,m if transA) @ b (k,n | n,k if transB) [+ bias]. */
  matmul(
    out: Tensor,
    a: Tensor,
    b: Tensor,
    m: number,
    n: number,
    k: number,
    options?: MatmulOptions,
  ): void;
  /** out[r, c] (+)= sum over rows of x (rows, cols)  → out (cols). Bias gradients. */
  colSum(out: Tensor, x: Tensor, rows: number, cols: number, accumulate: boolean): void;
  /** out (n) = a + b, elementwise. `out` may be `a` (in place). */
  add(out: Tensor, a: Tensor, b: Tensor, n: number): void;
  /** out (n) = a, or out += a with accumulate. */
  copy(out: Tensor, a: Tensor, n: number, accumulate?: boolean): void;
  /** Sets every element of `out` to `value`. */
  fill(out: Tensor, value: number, n: number): void;
  /**
   * out (n) (+)= keep(i) ? x * scale / (1 - p) : 0, keep(i) a hash of (seed, salt, i): LoRA's
   * seeded dropout and scaling (see {@link DropoutArgs}).
   */
  dropout(args: DropoutArgs): void;

  /** out (N,C) = table (V,C)[ids (N)]. */
  embeddingForward(out: Tensor, ids: Tensor, table: Tensor, N: number, C: number): void;
  /**
   * dTable (V,C) += sum over positions p with ids[p] = v of dOut[p]. `order` (N) lists positions
   * grouped by token id in ascending position order and `offsets` (V+1) delimits each id's group
   * (a CSR built on the host with the batch), so each row sums in a fixed order without atomics.
   */
  embeddingBackward(
    dTable: Tensor,
    dOut: Tensor,
    order: Tensor,
    offsets: Tensor,
    V: number,
    C: number,
  ): void;

  /** out (N,C) = x * rsqrt(mean(x^2) + eps) * w; rstd (N) keeps rsqrt(mean(x^2)+eps). */
  rmsnormForward(args: RmsnormForwardArgs): void;
  /** dx (N,C) (+)= d/dx; dw (C) += d/dw, rows summed in order. */
  rmsnormBackward(args: RmsnormBackwardArgs): void;

  /**
   * Rotary embedding in place on x (B*T, H, D), HF rotate-half convention. Row r has position
   * r % T. cos, sin: (T, D/2) tables. `inverse` rotates by -angle (the backward of the forward).
   */
  rope(args: RopeArgs): void;

  /**
   * Causal grouped-query attention. q (B,T,H,D), k and v (B,T,Hkv,D), out (B,T,H,D),
   * stats (B,H,T,2) keeps each row's score max and exp-sum for the backward, which recomputes
   * the softmax from them (no (T, T) buffer); scores scaled by 1/sqrt(D).
   */
  attentionForward(args: AttentionForwardArgs): void;
  /** Gradients of {@link Ops.attentionForward}; dq, dk, dv are overwritten. rowDot (B,H,T) is scratch. */
  attentionBackward(args: AttentionBackwardArgs): void;

  /** out (n) = silu(gate) * up. */
  swigluForward(out: Tensor, gate: Tensor, up: Tensor, n: number): void;
  /** dGate, dUp (n) = gradients of silu(gate) * up; overwritten. */
  swigluBackward(
    dGate: Tensor,
    dUp: Tensor,
    dOut: Tensor,
    gate: Tensor,
    up: Tensor,
    n: number,
  ): void;

  /**
   * Row statistics of a chunk of logits (R,V): lse (R) = logsumexp of the row and
   * tokenLogp (R) = logits[r, targets[r]] - lse[r], or 0 where targets[r] < 0 (not counted).
   */
  logitsForward(
    lse: Tensor,
    tokenLogp: Tensor,
    logits: Tensor,
    targets: Tensor,
    R: number,
    V: number,
  ): void;
  /**
   * In place, logits (R,V) becomes d(loss)/d(logits) = rowGrad[r] * (onehot(target) - softmax),
   * where rowGrad (R) = d(loss)/d(tokenLogp). Rows with targets[r] < 0 become 0.
   */
  logitsBackward(
    logits: Tensor,
    lse: Tensor,
    targets: Tensor,
    rowGrad: Tensor,
    R: number,
    V: number,
  ): void;
  /**
   * The LM head fused with log-softmax and the target gather, chunked over the vocabulary, where a
   * backend runs it (the WebGPU backend on hardware layouts); a backend without it leaves the
   * three undefined and the model runs matmul + {@link logitsForward} over chunks of rows. The
   * plan for up to `rows` rows, or undefined where the fused head does not apply to the shape.
   */
  lmHeadPlan?(rows: number, V: number, C: number, logitsBudget: number): LmHeadPlan | undefined;
  /** lse and tokenLogp (N) of logits = hidden (N,C) @ weight (V,C)^T, with no (N,V) buffer. */
  lmHeadForward?(args: LmHeadForwardArgs): void;
  /** dHidden (N,C) = dLogits @ weight, dWeight (V,C) += dLogits^T @ hidden, logits recomputed. */
  lmHeadBackward?(args: LmHeadBackwardArgs): void;
  /** seqLogps (S) = sum over t of tokenLogp (S,T): per-sequence completion log-prob sums. */
  sequenceSum(seqLogps: Tensor, tokenLogp: Tensor, S: number, T: number): void;
  /** rowGrad (S,T) = seqGrad[s] for every token t of sequence s (masked rows are zeroed later). */
  broadcastSequence(rowGrad: Tensor, seqGrad: Tensor, S: number, T: number): void;

  /**
   * Weighted-sum objective: loss (1) (+)= sum_s weights[s] * seqLogps[s] and seqGrad (S) =
   * weights. With weights -1/tokens it is the SFT negative log-likelihood.
   */
  weightedSum(
    loss: Tensor,
    seqGrad: Tensor,
    seqLogps: Tensor,
    weights: Tensor,
    S: number,
    accumulate: boolean,
  ): void;
  /**
   * A preference loss on P pairs (src/backend/losses.ts has the formulas). policyLogps, refLogps
   * and tokenCounts (2P, completion tokens as f32) hold chosen sequences 0..P-1 then rejected
   * P..2P-1; refLogps is ignored by reference-free losses. Writes seqGrad (2P) = scale *
   * d(sum of per-pair losses)/d(policyLogps) and adds scale-weighted metrics into metrics
   * ({@link PREFERENCE_METRICS} order). P ≤ 512 when the spec holds `aot` or `aot_unpaired`
   * (they sort within the batch in one workgroup).
   */
  preferenceLoss(args: PreferenceLossArgs): void;
  /**
   * KTO (Ethayarajh et al. 2024) on B unpaired examples. policyLogps (B) are the examples'
   * completion log-probs, policyKlLogps (B) those of the mismatched pairs (prompt i with the
   * completion of example i+1), refLogps (2B) the reference's, examples then mismatched pairs;
   * labels (B) are 1 (desirable) or 0. z0 = max(0, mean(policyKl - refKl)) is detached.
   * Writes seqGrad (B) = scale * d(sum of losses)/d(policyLogps); adds into metrics
   * ({@link KTO_METRICS} order) scale * loss, scale * B * z0, and unscaled sums and counts.
   */
  ktoLoss(args: KtoLossArgs): void;
  /**
   * partial = per-workgroup sums of squares of g (n), then total (1) = their sum, in a fixed
   * order. Used for the global gradient norm. g may come in pieces (an arena split across
   * buffers), one flat array in order: the sums and their order are those of the whole. partial
   * holds `normScratchSlots(n)` elements (src/backend/hyper.ts).
   */
  sumSquares(total: Tensor, partial: Tensor, g: Tensor | readonly Tensor[], n: number): void;
  /**
   * One optimizer step over a whole arena: params, grads, state1, state2 have n elements.
   * gradNormSq (1) is the result of {@link Ops.sumSquares}, used for clipping on the device.
   */
  optimizerStep(args: OptimizerStepArgs): void;

  /**
   * Decode (one new token per row): rotary embedding in place on x (rows, H, D), row r at the
   * position positions[r] (i32), from cos, sin tables (L, D/2).
   */
  ropeAt(args: RopeAtArgs): void;
  /** Decode: kCache, vCache (B,L,Hkv,D)[b, positions[b]] = k, v (B,Hkv,D)[b]. */
  kvCacheWrite(args: KvCacheWriteArgs): void;
  /**
   * Decode: out (B,H,D) = attention of the one query q (B,H,D) of each row over its cache
   * positions 0..positions[b] (GQA, scaled by 1/sqrt(D)); scores (B,H,L) is scratch.
   */
  decodeAttention(args: DecodeAttentionArgs): void;
  /**
   * Decode: the sampling step of B rows from logits (B,V), all on the device. Rows inside their
   * prompt feed their next prompt token, finished rows feed the pad token, the others sample
   * (temperature, top-k, top-p, seeded counter-based noise) and append to the outputs; every
   * row's position advances by one. See {@link DecodeRows} and src/cpu/decode.ts.
   */
  sampleTokens(
    rows: DecodeRows,
    logits: Tensor,
    B: number,
    V: number,
    settings: SampleSettings,
  ): void;

  /**
   * Evaluation: kl (R) = KL(softmax(policyLogits[r]) ‖ softmax(referenceLogits[r])) of two
   * chunks of logits (R,V), the full-vocabulary KL at one position; 0 where targets[r] < 0.
   * Summed over a sampled completion's positions it is the sequence-level KL (src/eval/kl.ts).
   */
  klRows(
    kl: Tensor,
    policyLogits: Tensor,
    referenceLogits: Tensor,
    targets: Tensor,
    R: number,
    V: number,
  ): void;
}

/** Int32 slots per row of the decode row state: generated count, done flag, stream id, prompt length. */
export const ROW_STATE = 4;

/** The device state of decoding rows, read and written by {@link Ops.sampleTokens}. */
export interface DecodeRows {
  /** (B) i32: the token each row feeds next. */
  tokens: Tensor;
  /** (B) i32: the position of that token. */
  positions: Tensor;
  /** (B,ROW_STATE) i32 per row: generated count, done flag, stream id (noise key), prompt length. */
  rowState: Tensor;
  /** (B,promptStride) i32: the prompts, left-aligned. */
  prompts: Tensor;
  /** Row stride of `prompts`. */
  promptStride: number;
  /** (B,maxNewTokens) i32: generated tokens (the caller fills it with the pad id first). */
  outTokens: Tensor;
  /** (B,maxNewTokens) f32: log_softmax(logits)[token] of each generated token (temperature 1). */
  outLogps: Tensor;
}

/** Settings of {@link Ops.sampleTokens} (HF generate's names in camelCase). */
export interface SampleSettings {
  /** Tokens generated per row at most; also the row stride of the outputs. */
  maxNewTokens: number;
  /** Logits are divided by it; 0 means greedy (argmax). */
  temperature: number;
  /** Keep the k most likely tokens (ties included); 0 = off. @default 0 */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p; 1 = off. @default 1 */
  topP?: number;
  /** Seed of the counter-based noise (u32). @default 0 */
  seed?: number;
  /** Ids that finish a row (at most 8). @default [] */
  eosTokenIds?: readonly number[];
  /** Token fed by finished rows. @default 0 */
  padTokenId?: number;
}

/** A backend: memory, the ops, and (on WebGPU) the recording and submission of work. */
export interface Backend {
  /** `"webgpu"` or `"cpu"`. */
  readonly kind: "webgpu" | "cpu";
  /** Human-readable adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)` or `cpu (f32)`. */
  readonly adapterName: string;
  /** The ops of this backend. */
  readonly ops: Ops;
  /**
   * Bytes one tensor may hold at most (WebGPU: the adapter's `maxBufferSize`; the CPU: Infinity).
   * A parameter arena larger than this is allocated in several pieces (src/model/params.ts).
   */
  readonly maxBufferBytes: number;
  /** Allocates a zero-filled tensor in the arena of `role`. */
  alloc(role: Role, size: number, dtype?: DType): Tensor;
  /**
   * A sub-range of `parent` (offset and size in elements). On WebGPU the offset must be a multiple
   * of 64 elements (the 256-byte binding alignment).
   */
  view(parent: Tensor, offset: number, size: number): Tensor;
  /** Copies host data into a tensor (queued on WebGPU, before the next recorded work). */
  write(t: Tensor, data: ArrayLike<number>, offset?: number): void;
  /** Reads a tensor back to the host. On WebGPU this submits pending work and waits. */
  read(t: Tensor): Promise<Float64Array | Float32Array | Int32Array>;
  /** Packs optimizer scalars into a small device tensor (see {@link Ops.optimizerStep}). */
  writeHyper(t: Tensor, hyper: OptimizerHyper): void;
  /** Submits the recorded work (WebGPU); a no-op on the CPU. */
  submit(): void;
  /** Bytes allocated per role. */
  bytesByRole(): Record<Role, number>;
  /** Counters since creation: dispatches, submits, readbacks. */
  counters(): { dispatches: number; submits: number; readbacks: number };
  /** Frees every buffer. */
  destroy(): void;
}
