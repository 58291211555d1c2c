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

/** Element type of a tensor. Token ids, targets and index lists are `i32`. */
export type DType = "f32" | "i32";

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

/** Per-step scalars of the optimizer, written to the device before each submit (no readback). */
export interface OptimizerHyper {
  /** Learning rate of this step (schedule already applied). */
  lr: number;
  /** 1-based optimizer step, for Adam's bias correction. */
  step: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** RMSprop smoothing constant (PyTorch's `alpha`). */
  alpha: number;
  /** SGD / RMSprop momentum. */
  momentum: number;
  /** Global gradient-norm clip; 0 or Infinity = off. */
  maxGradNorm: number;
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
  rmsnormForward(
    out: Tensor,
    rstd: Tensor,
    x: Tensor,
    w: Tensor,
    N: number,
    C: number,
    eps: number,
  ): void;
  /** dx (N,C) (+)= d/dx; dw (C) += d/dw, rows summed in order. */
  rmsnormBackward(
    dx: Tensor,
    dw: Tensor,
    dOut: Tensor,
    x: Tensor,
    w: Tensor,
    rstd: Tensor,
    N: number,
    C: number,
    accumulateDx: boolean,
  ): void;

  /**
   * Rotary embedding in place on x (B*T, H, D), HF rotate-half convention. Row r has position
   * r % T. cos, sin: (T, D/2) tables. `inverse` rotates by -angle (the backward of the forward).
   */
  rope(
    x: Tensor,
    cos: Tensor,
    sin: Tensor,
    BT: number,
    T: number,
    H: number,
    D: number,
    inverse: boolean,
  ): void;

  /**
   * Causal grouped-query attention. q (B,T,H,D), k and v (B,T,Hkv,D), out (B,T,H,D),
   * probs (B,H,T,T) keeps the softmax for the backward; scores scaled by 1/sqrt(D).
   */
  attentionForward(
    out: Tensor,
    probs: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    B: number,
    T: number,
    H: number,
    Hkv: number,
    D: number,
  ): void;
  /** Gradients of {@link Ops.attentionForward}; dq, dk, dv are overwritten. dScores (B,H,T,T) is scratch. */
  attentionBackward(
    dq: Tensor,
    dk: Tensor,
    dv: Tensor,
    dScores: Tensor,
    dOut: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    probs: Tensor,
    B: number,
    T: number,
    H: number,
    Hkv: number,
    D: number,
  ): void;

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
   * A preference loss on P pairs (src/train/losses.ts has the formulas). policyLogps, refLogps
   * and tokenCounts (2P, completion tokens as f32) hold chosen sequences 0..P-1 then rejected
   * P..2P-1; refLogps is ignored by reference-free losses. Writes seqGrad (2P) = scale *
   * d(sum of per-pair losses)/d(policyLogps) and adds scale-weighted metrics into metrics
   * ({@link PREFERENCE_METRICS} order). P ≤ 512 when the spec holds `aot` or `aot_unpaired`
   * (they sort within the batch in one workgroup).
   */
  preferenceLoss(
    spec: PreferenceLossSpec,
    metrics: Tensor,
    seqGrad: Tensor,
    policyLogps: Tensor,
    refLogps: Tensor,
    tokenCounts: Tensor,
    P: number,
    scale: number,
  ): void;
  /**
   * KTO (Ethayarajh et al. 2024) on B unpaired examples. policyLogps (B) are the examples'
   * completion log-probs, policyKlLogps (B) those of the mismatched pairs (prompt i with the
   * completion of example i+1), refLogps (2B) the reference's, examples then mismatched pairs;
   * labels (B) are 1 (desirable) or 0. z0 = max(0, mean(policyKl - refKl)) is detached.
   * Writes seqGrad (B) = scale * d(sum of losses)/d(policyLogps); adds into metrics
   * ({@link KTO_METRICS} order) scale * loss, scale * B * z0, and unscaled sums and counts.
   */
  ktoLoss(
    spec: KtoLossSpec,
    metrics: Tensor,
    seqGrad: Tensor,
    policyLogps: Tensor,
    policyKlLogps: Tensor,
    refLogps: Tensor,
    labels: Tensor,
    B: number,
    scale: number,
  ): void;
  /**
   * partial = per-workgroup sums of squares of g (n), then total (1) = their sum, in a fixed
   * order. Used for the global gradient norm.
   */
  sumSquares(total: Tensor, partial: Tensor, g: Tensor, n: number): void;
  /**
   * One optimizer step over a whole arena: params, grads, state1, state2 have n elements.
   * gradNormSq (1) is the result of {@link Ops.sumSquares}, used for clipping on the device.
   */
  optimizerStep(
    kind: "adamw" | "rmsprop" | "sgd",
    params: Tensor,
    grads: Tensor,
    state1: Tensor,
    state2: Tensor,
    gradNormSq: Tensor,
    hyper: Tensor,
    n: number,
  ): void;

  /**
   * Decode (one new token per row): rotary embedding in place on x (rows, H, D), row r at the
   * position positions[r] (i32), from cos, sin tables (L, D/2).
   */
  ropeAt(
    x: Tensor,
    cos: Tensor,
    sin: Tensor,
    positions: Tensor,
    rows: number,
    H: number,
    D: number,
  ): void;
  /** Decode: kCache, vCache (B,L,Hkv,D)[b, positions[b]] = k, v (B,Hkv,D)[b]. */
  kvCacheWrite(
    kCache: Tensor,
    vCache: Tensor,
    k: Tensor,
    v: Tensor,
    positions: Tensor,
    B: number,
    L: number,
    Hkv: number,
    D: number,
  ): void;
  /**
   * Decode: out (B,H,D) = attention of the one query q (B,H,D) of each row over its cache
   * positions 0..positions[b] (GQA, scaled by 1/sqrt(D)); scores (B,H,L) is scratch.
   */
  decodeAttention(
    out: Tensor,
    scores: Tensor,
    q: Tensor,
    kCache: Tensor,
    vCache: Tensor,
    positions: Tensor,
    B: number,
    L: number,
    H: number,
    Hkv: number,
    D: number,
  ): void;
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

/** The device state of decoding rows, read and written by {@link Ops.sampleTokens}. */
export interface DecodeRows {
  /** (B) i32: the token each row feeds next. */
  tokens: Tensor;
  /** (B) i32: the position of that token. */
  positions: Tensor;
  /** (B,4) i32 per row: generated count, done flag, stream id (noise key), prompt length. */
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

/**
 * TRL's paired preference losses (DPOConfig.loss_type) plus SimPO and ORPO; a type's index is
 * its code on the device. docs/losses.md has a row per loss.
 */
export const PREFERENCE_LOSS_TYPES = [
  "sigmoid",
  "robust",
  "hinge",
  "ipo",
  "exo_pair",
  "nca_pair",
  "bco_pair",
  "sppo_hard",
  "aot",
  "aot_unpaired",
  "apo_zero",
  "apo_down",
  "discopop",
  "sigmoid_norm",
  "sft",
  "simpo",
  "orpo",
] as const;

/** A paired preference loss with a device kernel. */
export type PreferenceLossType = typeof PREFERENCE_LOSS_TYPES[number];

/** TRL's f-divergence of the implicit reward (Wang et al. 2023, "Beyond Reverse KL"). */
export type FDivergenceType = "reverse_kl" | "forward_kl" | "js_divergence" | "alpha_divergence";

/**
 * A resolved preference loss: the weighted sum of `lossTypes` and their hyperparameters (TRL's
 * DPOConfig names in camelCase). `resolveLossSpec` in src/train/losses.ts fills the defaults.
 */
export interface PreferenceLossSpec {
  lossTypes: readonly PreferenceLossType[];
  /** One weight per type; the loss is the weighted sum. */
  lossWeights: readonly number[];
  beta: number;
  labelSmoothing: number;
  fDivergenceType: FDivergenceType;
  fAlphaDivergenceCoef: number;
  /** Treat the reference log-probs as 0 (an implicit uniform reference). */
  referenceFree: boolean;
  /** R-DPO's length penalty α on the margin (Park et al. 2024); 0 = off. */
  rdpoAlpha: number;
  /** SimPO's target margin γ, in reward units. */
  simpoGamma: number;
  /** DiscoPOP's temperature τ. */
  discopopTau: number;
  /** IPO on per-token averages (TRL) instead of the paper's sums. */
  ipoLengthNormalized: boolean;
}

/** KTO's loss types (KTOConfig.loss_type). */
export type KtoLossType = "kto" | "apo_zero_unpaired";

/** KTO's hyperparameters (TRL's KTOConfig names in camelCase). */
export interface KtoLossSpec {
  lossType: KtoLossType;
  beta: number;
  desirableWeight: number;
  undesirableWeight: number;
}

/** Order of the metrics a preference loss accumulates (TRL's names). */
export const PREFERENCE_METRICS = [
  "loss",
  "rewards/chosen",
  "rewards/rejected",
  "rewards/accuracies",
  "rewards/margins",
  "logps/chosen",
  "logps/rejected",
  "nll_loss",
  "log_odds_ratio",
  "log_odds_chosen",
] as const;

/** Order of the metric slots of {@link Ops.ktoLoss} (sums, turned into TRL's means on read). */
export const KTO_METRICS = [
  "loss",
  "kl",
  "rewards/chosen_sum",
  "rewards/rejected_sum",
  "logps/chosen_sum",
  "logps/rejected_sum",
  "count/chosen",
  "count/rejected",
] as const;

/** Number of f32 slots of the hyper tensor written by {@link Backend.writeHyper}. */
export const HYPER_SLOTS = 16;

/**
 * Layout of the hyper tensor (f32 slots), shared by the CPU and WGSL optimizers:
 * 0 lr, 1 beta1, 2 beta2, 3 eps, 4 weightDecay, 5 Adam step size `lr / (1 - beta1^step)`,
 * 6 `sqrt(1 - beta2^step)`, 7 alpha, 8 momentum, 9 maxGradNorm (0 = off), 10 step,
 * 11 `1 - beta1`, 12 `1 - beta2`, 13 `1 - alpha` (as float64 differences rounded once: the f32
 * of 0.999 is not exactly 0.999, and PyTorch subtracts in float64).
 * Slots 5 and 6 are computed in float64 on the host, as PyTorch computes them in Python floats.
 */
export function packHyper(h: OptimizerHyper): Float32Array {
  const out = new Float32Array(HYPER_SLOTS);
  out[0] = h.lr;
  out[1] = h.beta1;
  out[2] = h.beta2;
  out[3] = h.eps;
  out[4] = h.weightDecay;
  out[5] = h.lr / (1 - Math.pow(h.beta1, h.step));
  out[6] = Math.sqrt(1 - Math.pow(h.beta2, h.step));
  out[7] = h.alpha;
  out[8] = h.momentum;
  out[9] = Number.isFinite(h.maxGradNorm) ? h.maxGradNorm : 0;
  out[10] = h.step;
  out[11] = 1 - h.beta1;
  out[12] = 1 - h.beta2;
  out[13] = 1 - h.alpha;
  return out;
}
